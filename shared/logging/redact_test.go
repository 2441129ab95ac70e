package logging_test

import (
	"testing"

	"github.com/wahook/wahook/shared/logging"
)

func TestRedactURLString(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                             "",
		"https://hooks.example.com/wa": "https://hooks.example.com/wa",
		"https://u:p@hooks.example.com/wa?token=t#frag": "https://xxxxx@hooks.example.com/wa?xxxxx",
		"https://token@hooks.example.com/wa?":           "https://xxxxx@hooks.example.com/wa",
		"http://[::1]:8080/x?a=1&b=2":                   "http://[::1]:8080/x?xxxxx",
		"http://[bad":                                   "xxxxx",
	} {
		if got := logging.RedactURLString(in); got != want {
			t.Errorf("RedactURLString(%q) = %q, want %q", in, got, want)
		}
	}
}
