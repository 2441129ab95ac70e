package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/wahook/wahook/ingest/internal/pipeline"
	"github.com/wahook/wahook/ingest/internal/signature"
	"github.com/wahook/wahook/shared/health"
	"github.com/wahook/wahook/shared/webhook"
)

// verify answers Meta's subscription handshake: hub.mode=subscribe and one of
// the configured verify tokens → hub.challenge, byte for byte.
func (s *server) verify(c echo.Context) error {
	q := c.QueryParams()
	if q.Get("hub.mode") != "subscribe" {
		return errVerifyRefused
	}
	i, ok := s.tokens.match(q.Get("hub.verify_token"))
	if !ok {
		return errVerifyRefused
	}
	s.metrics.VerifyTokenMatched(i)
	return c.Blob(http.StatusOK, echo.MIMETextPlainCharsetUTF8, []byte(q.Get("hub.challenge")))
}

// Summary is the JSON body of a POST /webhook answer.
type Summary struct {
	Received   int `json:"received"`
	Queued     int `json:"queued"`
	Duplicates int `json:"duplicates"`
	Rejected   int `json:"rejected"`
	Failed     int `json:"failed,omitempty"`
}

func summaryOf(r pipeline.Result) Summary {
	return Summary{Received: r.Received, Queued: r.Queued, Duplicates: r.Duplicates, Rejected: r.Rejected, Failed: r.Failed}
}

// receive takes a webhook: read within the limit, check the signature on the
// raw bytes, parse, and hand the events to the processor.
func (s *server) receive(c echo.Context) error {
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	if s.verifier != nil {
		i, err := s.verifier.Verify(c.Request().Header.Get(signature.Header), body)
		if err != nil {
			return err
		}
		s.metrics.SignatureMatched(i)
	}
	batch, err := webhook.Parse(body)
	if err != nil {
		return err
	}
	res := s.proc.Process(c.Request().Context(), batch, logger(c))
	if !res.Complete() {
		return &incompleteError{result: res}
	}
	return c.JSON(http.StatusOK, summaryOf(res))
}

// readBody reads the whole body, refusing one over the limit before reading it
// when its length is declared, and as soon as it passes the limit otherwise.
func (s *server) readBody(c echo.Context) ([]byte, error) {
	req := c.Request()
	if req.ContentLength > s.opts.BodyLimit {
		return nil, fmt.Errorf("%w: %d bytes declared, limit %d", errBodyTooLarge, req.ContentLength, s.opts.BodyLimit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, s.opts.BodyLimit))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, fmt.Errorf("%w: limit %d", errBodyTooLarge, tooLarge.Limit)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBodyUnreadable, err)
	}
	return body, nil
}

// live is the liveness probe: the process serves HTTP.
func (s *server) live(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// detailed reports the backends; 503 when none answers.
func (s *server) detailed(c echo.Context) error {
	r := s.checker.Run(c.Request().Context())
	if r.Status == health.Unhealthy {
		return &unhealthyError{report: r}
	}
	return c.JSON(http.StatusOK, r)
}
