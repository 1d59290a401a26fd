//go:build !linux

package transfer_test

import "testing"

func directSupported(t *testing.T, dir string) bool { return false }
