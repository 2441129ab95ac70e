package logging

import "net/url"

// Masked stands in for what a log must not show.
const Masked = "xxxxx"

// RedactURL returns u as logs and errors may show it: its userinfo and query,
// where credentials and tokens live, masked ("https://xxxxx@host/path?xxxxx").
func RedactURL(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.User(Masked)
	}
	if c.RawQuery != "" {
		c.RawQuery = Masked
	}
	c.ForceQuery, c.Fragment, c.RawFragment = false, "", ""
	return c.String()
}

// RedactURLString is RedactURL for a URL in text form; text that does not
// parse as a URL is masked whole.
func RedactURLString(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Masked
	}
	return RedactURL(u)
}
