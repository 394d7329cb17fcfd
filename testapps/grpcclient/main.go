// Command grpcclient calls grpcserver's hand-described "demo.Echo" service
// over one ClientConn, using conn.Invoke and conn.NewStream directly (no
// generated stubs), for gotrace's tests. It builds in GOPATH mode against
// grpc-go 1.33, 1.64 and 1.79: grpc.Dial and grpc.WithInsecure are deprecated
// in newer releases but still present in all three, whereas
// insecure.NewCredentials only exists from 1.34 on.
//
// It prints one final line
//
//	DONE ok=<n> failed=<n>
//
// An expected error (NOT_FOUND from Fail, DEADLINE_EXCEEDED from the
// -deadline-ms Sleep call, CANCELLED from the -cancel-stream stream) counts as
// ok. Exit status 1 if anything failed.
//
// Odd-numbered Count streams are read on a goroutine other than the one that
// opened them, and the cancelled stream ends on grpc's own context watcher:
// a stream's end is not always on its creator's goroutine.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/golang/protobuf/ptypes/wrappers"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var countDesc = &grpc.StreamDesc{StreamName: "Count", ServerStreams: true}

type counters struct{ ok, failed int64 }

func (c *counters) result(verbose bool, what string, err error) {
	if err != nil {
		atomic.AddInt64(&c.failed, 1)
		fmt.Printf("%s: FAILED: %v\n", what, err)
		return
	}
	atomic.AddInt64(&c.ok, 1)
	if verbose {
		fmt.Printf("%s: ok\n", what)
	}
}

func main() {
	addr := flag.String("addr", "", "server address host:port (required)")
	n := flag.Int("n", 10, "number of unary Say calls")
	streams := flag.Int("streams", 1, "number of server-streaming Count calls")
	count := flag.Int("count", 5, "messages to ask for in each Count stream")
	concurrency := flag.Int("concurrency", 1, "calls in flight at once")
	deadlineMs := flag.Int("deadline-ms", 0, "also call Sleep with this deadline, expecting DEADLINE_EXCEEDED (0 = no)")
	fail := flag.Bool("fail", false, "also call Fail once, expecting NOT_FOUND")
	cancelStream := flag.Bool("cancel-stream", false, "also open a Count stream and cancel it after one message, expecting CANCELLED")
	verbose := flag.Bool("v", false, "print one line per call")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("grpcclient: ")
	if *addr == "" {
		log.Fatal("-addr is required")
	}
	if *concurrency < 1 {
		*concurrency = 1
	}

	conn, err := grpc.Dial(*addr, grpc.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	// A signal stops handing out new calls; calls in flight complete.
	sigctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	var c counters
	jobs := make(chan func())
	var wg sync.WaitGroup
	for w := 0; w < *concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for job := range jobs {
				job()
			}
		}()
	}
	submit := func(job func()) bool {
		select {
		case jobs <- job:
			return true
		case <-sigctx.Done():
			return false
		}
	}

	// Hand out the calls one by one: unary Says, then the streams, then the
	// expected failures.
	total := *n + *streams
	if *fail {
		total++
	}
	if *deadlineMs > 0 {
		total++
	}
	if *cancelStream {
		total++
	}
	for k := 0; k < total; k++ {
		var job func()
		switch i := k; {
		case i < *n:
			job = func() { c.result(*verbose, fmt.Sprintf("Say %d", i), say(conn, i)) }
		case i < *n+*streams:
			job = func() {
				c.result(*verbose, fmt.Sprintf("Count %d", i-*n), countStream(conn, *count, (i-*n)%2 == 1))
			}
		case *fail && i == *n+*streams:
			job = func() { c.result(*verbose, "Fail", expectCode(callFail(conn), codes.NotFound)) }
		case *cancelStream && i == total-1:
			job = func() { c.result(*verbose, "Count cancelled", expectCode(cancelledStream(conn), codes.Canceled)) }
		default:
			job = func() {
				err := sleepPastDeadline(conn, *deadlineMs)
				c.result(*verbose, "Sleep", expectCode(err, codes.DeadlineExceeded))
			}
		}
		if !submit(job) {
			break
		}
	}
	close(jobs)
	wg.Wait()

	fmt.Printf("DONE ok=%d failed=%d\n", c.ok, c.failed)
	if c.failed > 0 {
		os.Exit(1)
	}
}

func say(conn *grpc.ClientConn, i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := &wrappers.StringValue{Value: "client " + strconv.Itoa(i)}
	resp := new(wrappers.StringValue)
	if err := conn.Invoke(ctx, "/demo.Echo/Say", req, resp); err != nil {
		return err
	}
	if want := "hello " + req.Value; resp.Value != want {
		return fmt.Errorf("got %q, want %q", resp.Value, want)
	}
	return nil
}

// countStream asks for count messages and reads them, on this goroutine or
// (elsewhere) on another one.
func countStream(conn *grpc.ClientConn, count int, elsewhere bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := openCount(ctx, conn, count)
	if err != nil {
		return err
	}
	if !elsewhere {
		return readCount(cs, count)
	}
	result := make(chan error)
	go func() { result <- readCount(cs, count) }()
	return <-result
}

func openCount(ctx context.Context, conn *grpc.ClientConn, count int) (grpc.ClientStream, error) {
	cs, err := conn.NewStream(ctx, countDesc, "/demo.Echo/Count")
	if err != nil {
		return nil, err
	}
	if err := cs.SendMsg(&wrappers.StringValue{Value: strconv.Itoa(count)}); err != nil {
		return nil, err
	}
	return cs, cs.CloseSend()
}

// cancelledStream asks for far more messages than it reads, then cancels the
// stream and reads until the error.
func cancelledStream(conn *grpc.ClientConn) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cs, err := openCount(ctx, conn, 1_000_000_000)
	if err != nil {
		return err
	}
	if err := cs.RecvMsg(new(wrappers.StringValue)); err != nil {
		return err
	}
	cancel()
	for {
		if err := cs.RecvMsg(new(wrappers.StringValue)); err != nil {
			return err
		}
	}
}

func readCount(cs grpc.ClientStream, count int) error {
	got := 0
	for {
		m := new(wrappers.StringValue)
		err := cs.RecvMsg(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		got++
		if m.Value != strconv.Itoa(got) {
			return fmt.Errorf("message %d is %q", got, m.Value)
		}
	}
	if got != count {
		return fmt.Errorf("got %d messages, want %d", got, count)
	}
	return nil
}

func callFail(conn *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return conn.Invoke(ctx, "/demo.Echo/Fail", &wrappers.StringValue{Value: "x"}, new(wrappers.StringValue))
}

// sleepPastDeadline asks the server to sleep well past the deadline.
func sleepPastDeadline(conn *grpc.ClientConn, deadlineMs int) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(deadlineMs)*time.Millisecond)
	defer cancel()
	req := &wrappers.StringValue{Value: strconv.Itoa(deadlineMs*2 + 1000)}
	return conn.Invoke(ctx, "/demo.Echo/Sleep", req, new(wrappers.StringValue))
}

// expectCode turns the expected status into success and anything else
// (including success) into an error.
func expectCode(err error, want codes.Code) error {
	if got := status.Code(err); got != want {
		return fmt.Errorf("got status %v (%v), want %v", got, err, want)
	}
	return nil
}
