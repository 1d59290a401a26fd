package transfer

import "unsafe"

// alignedBuffer returns n bytes (n a multiple of directAlign) whose first
// byte is aligned to directAlign, as O_DIRECT reads and writes need.
func alignedBuffer(n int) []byte {
	b := make([]byte, n+directAlign)
	skip := 0
	if r := int(uintptr(unsafe.Pointer(&b[0])) % directAlign); r != 0 {
		skip = directAlign - r
	}
	return b[skip : skip+n : skip+n]
}

func alignDown(x int64) int64 { return x &^ (directAlign - 1) }
func alignUp(x int64) int64   { return (x + directAlign - 1) &^ (directAlign - 1) }
