package server

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/wahook/wahook/ingest/internal/pipeline"
	"github.com/wahook/wahook/ingest/internal/signature"
	"github.com/wahook/wahook/shared/health"
	"github.com/wahook/wahook/shared/webhook"
)

// Errors the handlers return; statusOf turns them into status codes.
var (
	errVerifyRefused  = errors.New("subscription verification refused")
	errBodyTooLarge   = errors.New("body too large")
	errBodyUnreadable = errors.New("body could not be read")
	errPanic          = errors.New("panic")
)

// incompleteError: some events are neither queued nor known duplicates.
type incompleteError struct{ result pipeline.Result }

func (e *incompleteError) Error() string {
	return "webhook not fully enqueued: " + http.StatusText(http.StatusServiceUnavailable)
}

// unhealthyError: every backend check failed.
type unhealthyError struct{ report health.Report }

func (e *unhealthyError) Error() string { return "backends unhealthy" }

// statusOf is the one place that decides the status code of a failed request.
func statusOf(err error) int {
	var (
		incomplete *incompleteError
		unhealthy  *unhealthyError
		httpErr    *echo.HTTPError
	)
	switch {
	case errors.Is(err, errVerifyRefused):
		return http.StatusForbidden
	case errors.Is(err, signature.ErrInvalid):
		return http.StatusUnauthorized
	case errors.Is(err, errBodyTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, errBodyUnreadable), errors.Is(err, webhook.ErrMalformed):
		return http.StatusBadRequest
	case errors.As(err, &incomplete), errors.As(err, &unhealthy):
		// Meta retries a 503; the events already enqueued come back as duplicates.
		return http.StatusServiceUnavailable
	case errors.As(err, &httpErr): // echo's own: 404, 405, ...
		return httpErr.Code
	default:
		return http.StatusInternalServerError
	}
}

// errorBody is the JSON body of a failed request that has no better one.
type errorBody struct {
	Error string `json:"error"`
}

// handleError is echo's HTTPErrorHandler: it writes the status statusOf decides
// and a body that says why (never internals on a 500).
func (s *server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code := statusOf(err)
	var (
		body       any
		incomplete *incompleteError
		unhealthy  *unhealthyError
		httpErr    *echo.HTTPError
	)
	switch {
	case errors.As(err, &incomplete):
		body = summaryOf(incomplete.result)
	case errors.As(err, &unhealthy):
		body = unhealthy.report
	case code >= 500:
		body = errorBody{Error: http.StatusText(code)}
	case errors.As(err, &httpErr):
		body = errorBody{Error: http.StatusText(code)}
		if msg, ok := httpErr.Message.(string); ok {
			body = errorBody{Error: msg}
		}
	default:
		body = errorBody{Error: err.Error()}
	}
	var werr error
	if c.Request().Method == http.MethodHead {
		werr = c.NoContent(code)
	} else {
		werr = c.JSON(code, body)
	}
	if werr != nil {
		logger(c).Debug("write error response", zap.Error(werr))
	}
}
