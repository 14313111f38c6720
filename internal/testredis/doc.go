// Package testredis starts a private, throw-away redis-server for a test, so
// that code talking to Redis is tested against the real thing. A machine
// without redis-server fails those tests with instructions; it never skips
// them.
package testredis
