package rlsdtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// SmallDisk mounts a fresh ext4 file system of sizeMiB on a loop device (a
// tmpfs if loop devices are not available) and returns its mount point;
// it is unmounted when the test ends. The test is skipped, saying why, where
// mounting is not permitted (not root, no mount(8), a container without
// CAP_SYS_ADMIN).
func SmallDisk(t testing.TB, sizeMiB int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("disk-full tests mount a small file system, which needs root")
	}
	tmp := t.TempDir()
	mnt := filepath.Join(tmp, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(tmp, "disk.img")
	size := strconv.Itoa(sizeMiB) + "M"
	mounted := false
	if out, err := exec.Command("truncate", "-s", size, img).CombinedOutput(); err == nil {
		if out, err = exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", img).CombinedOutput(); err == nil {
			if out, err = exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err == nil {
				mounted = true
			} else {
				t.Logf("loop mount failed (%v: %s); trying tmpfs", err, out)
			}
		} else {
			t.Logf("mkfs.ext4 failed (%v: %s); trying tmpfs", err, out)
		}
	} else {
		t.Logf("truncate failed (%v: %s); trying tmpfs", err, out)
	}
	if !mounted {
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", mnt).CombinedOutput(); err != nil {
			t.Skipf("cannot mount a small file system here (%v: %s)", err, out)
		}
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", mnt).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}

// Fill allocates a file in dir that leaves about leaveMiB free on dir's
// file system, and returns a function that removes it.
func Fill(t testing.TB, dir string, leaveMiB int) (free func()) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	avail := int64(st.Bavail) * st.Bsize
	n := avail - int64(leaveMiB)<<20
	name := filepath.Join(dir, "filler")
	if n > 0 {
		f, err := os.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Fallocate(int(f.Fd()), 0, 0, n); err != nil {
			f.Close()
			t.Fatalf("fallocate %d bytes in %s: %v", n, dir, err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return func() {
		if err := os.Remove(name); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
}
