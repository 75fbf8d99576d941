package satellite

import (
	"errors"
	"fmt"
	"slices"
)

// Code classifies an Error so that transports can map it to a reply, a Lambda
// response or an HTTP status in one place without inspecting messages.
type Code string

// Error codes. Everything that is not one of the client-facing codes is
// EINTERNAL: a failure of this backend or of an AWS service it depends on.
const (
	EINVALID         Code = "invalid"         // input that breaks a rule (a field's type, range, format)
	EMALFORMED       Code = "malformed"       // input that cannot be read at all (not JSON)
	ENOTFOUND        Code = "not_found"       // unknown id, missing record, expired record
	EUNAUTHENTICATED Code = "unauthenticated" // credentials missing or wrong
	EFORBIDDEN       Code = "forbidden"       // authenticated but not allowed (unassigned check)
	ECONFLICT        Code = "conflict"        // a conditional write lost a race or state moved on
	EGONE            Code = "gone"            // the WebSocket connection no longer exists
	ETOOLARGE        Code = "too_large"       // over a transport size limit
	EUNAVAILABLE     Code = "unavailable"     // a feature this deployment does not configure
	EINTERNAL        Code = "internal"        // anything else
)

// Error is the one application error type. Message is safe to show to the
// caller (it never holds secrets or tokens); Err, when set, is the underlying
// cause kept for logs and errors.Is/As.
type Error struct {
	Code    Code
	Message string
	Err     error
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with the given code and message that keeps err as its
// cause. It returns nil when err is nil.
func Wrap(err error, code Code, message string) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Message: message, Err: err}
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for
// any other non-nil error and "" for nil.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the caller-safe message of the first *Error in err's
// chain, or a generic message for any other error.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// Is reports whether err is an error with one of codes (an error that is
// not an *Error has code EINTERNAL). A nil err has no code: test it with
// err == nil, never by its code.
func Is(err error, codes ...Code) bool {
	if err == nil {
		return false
	}
	return slices.Contains(codes, ErrorCode(err))
}
