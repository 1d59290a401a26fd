// Command overload-probe watches an rlsd while scripts/bench-overload.sh
// loads it: every interval, for a bounded time, it asks the gRPC health
// service (on a connection of its own) and reads the process's resident
// set size from /proc. It prints one JSON object: health-call latencies
// (p50, p99, max), how many calls failed and with which codes, and RSS at
// the start, the largest sampled, the kernel's high-water mark (VmHWM) and
// at the end.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

type report struct {
	Calls        int            `json:"calls"`
	Failed       int            `json:"failed"`
	Codes        map[string]int `json:"codes"`
	P50ms        float64        `json:"health_p50_ms"`
	P99ms        float64        `json:"health_p99_ms"`
	MaxMs        float64        `json:"health_max_ms"`
	RSSStartMiB  float64        `json:"rss_start_mib"`
	RSSPeakMiB   float64        `json:"rss_peak_sampled_mib"`
	RSSHWMMiB    float64        `json:"rss_hwm_mib"`
	RSSEndMiB    float64        `json:"rss_end_mib"`
	ProcessAlive bool           `json:"process_alive_at_end"`
}

func main() {
	addr := flag.String("addr", "", "rlsd gRPC address")
	pid := flag.Int("pid", 0, "rlsd process id (for /proc)")
	interval := flag.Duration("interval", 100*time.Millisecond, "time between samples")
	duration := flag.Duration("duration", 30*time.Second, "how long to sample")
	timeout := flag.Duration("timeout", 5*time.Second, "timeout of one health call")
	flag.Parse()
	if *addr == "" || *pid == 0 {
		fmt.Fprintln(os.Stderr, "overload-probe: -addr and -pid are required")
		os.Exit(2)
	}
	if err := run(*addr, *pid, *interval, *duration, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "overload-probe:", err)
		os.Exit(1)
	}
}

func run(addr string, pid int, interval, duration, timeout time.Duration) error {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	h := healthpb.NewHealthClient(cc)
	r := report{Codes: map[string]int{}}
	r.RSSStartMiB, _ = procStatus(pid, "VmRSS")
	var lat []time.Duration
	tick := time.NewTicker(interval)
	defer tick.Stop()
	end := time.Now().Add(duration)
	for n := 0; time.Now().Before(end) && n < int(duration/interval)+1; n++ {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		t0 := time.Now()
		resp, err := h.Check(ctx, &healthpb.HealthCheckRequest{})
		d := time.Since(t0)
		cancel()
		r.Calls++
		lat = append(lat, d)
		switch {
		case err != nil:
			r.Failed++
			r.Codes[status.Code(err).String()]++
		case resp.GetStatus() != healthpb.HealthCheckResponse_SERVING:
			r.Failed++
			r.Codes[resp.GetStatus().String()]++
		default:
			r.Codes["OK"]++
		}
		if rss, err := procStatus(pid, "VmRSS"); err == nil {
			r.RSSPeakMiB = max(r.RSSPeakMiB, rss)
		}
		<-tick.C
	}
	r.RSSHWMMiB, _ = procStatus(pid, "VmHWM")
	rss, err := procStatus(pid, "VmRSS")
	r.RSSEndMiB, r.ProcessAlive = rss, err == nil
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	if len(lat) > 0 {
		r.P50ms = ms(lat[len(lat)*50/100])
		r.P99ms = ms(lat[min(len(lat)-1, len(lat)*99/100)])
		r.MaxMs = ms(lat[len(lat)-1])
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// procStatus returns a "kB" field of /proc/PID/status in MiB.
func procStatus(pid int, field string) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}
