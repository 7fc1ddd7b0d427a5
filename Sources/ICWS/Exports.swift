// The protocol types (messages, JSON, SSE, errors) live in ICWSProtocol,
// which has no dependencies so that the fuzzers build it alone.
@_exported import ICWSProtocol
