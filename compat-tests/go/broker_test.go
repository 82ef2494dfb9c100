package compat

// Test helper: a fresh broker per test.
//
// By default each test starts $KLAMM_BIN (default /root/.cache/klamm/target/release/klamm)
// on a free loopback port with a temporary data dir, waits for its
// "klamm ready on 127.0.0.1:PORT" line, and stops it by PID at cleanup (SIGTERM, then
// SIGKILL after 10 s). Restart/Kill keep the data dir and the port. The broker log is
// printed when the test failed.
//
// With COMPAT_BROKER=kafka the reference Apache Kafka is used instead, started with
// `compat-tests/kafka/kafka.sh start DIR name=value...` (which prints 127.0.0.1:PORT) and
// stopped with `compat-tests/kafka/kafka.sh stop DIR [SIGNAL]`; Klamm flags are mapped to
// Kafka property names by kafkaProps.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	defaultKlammBin = "/root/.cache/klamm/target/release/klamm"
	readyTimeout    = 20 * time.Second
	stopTimeout     = 10 * time.Second
)

// Klamm flags most tests use: fast group session expiry and KIP-848 heartbeats, quick
// clean-up of timed-out transactions.
var groupFlags = []string{
	"--group-min-session-timeout-ms", "1000",
	"--group-consumer-heartbeat-interval-ms", "500",
	"--transaction-abort-timed-out-transaction-cleanup-interval-ms", "100",
}

func useKafka() bool { return os.Getenv("COMPAT_BROKER") == "kafka" }

func klammBugsOn() bool { return os.Getenv("GO_COMPAT_KLAMM_BUGS") == "1" }

// klammBug skips the test with a "KLAMM-BUG:" message when running against Klamm,
// unless GO_COMPAT_KLAMM_BUGS=1 (then the test runs and shows the failure).
func klammBug(t *testing.T, format string, args ...any) {
	t.Helper()
	if useKafka() || klammBugsOn() {
		return
	}
	t.Skipf("KLAMM-BUG: "+format, args...)
}

type Broker struct {
	t       testing.TB
	name    string
	dir     string // Klamm: the data dir; Kafka: the kafka.sh dir
	log     string // Klamm's log file
	flags   []string
	kafka   []string // more Kafka properties (COMPAT_BROKER=kafka), after the mapped flags
	port    int
	addr    string
	cmd     *exec.Cmd
	done    chan struct{}
	exitErr atomic.Value // error of the last exit
	starts  int
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func repoRoot() string {
	wd, _ := os.Getwd() // the package dir: compat-tests/go
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

// startBroker starts a fresh broker for the test with extra Klamm flags
// (e.g. "--num-partitions", "3"); it is stopped at test cleanup.
func startBroker(t *testing.T, flags ...string) *Broker {
	t.Helper()
	return startBrokerKafkaProps(t, nil, flags...)
}

// startBrokerKafkaProps is startBroker with more properties for the reference Kafka
// (`name=value`, appended to the mapped flags' properties; Klamm ignores them), for
// settings the flags do not map (listeners, SASL, an authorizer).
func startBrokerKafkaProps(t *testing.T, props []string, flags ...string) *Broker {
	t.Helper()
	dir := t.TempDir()
	b := &Broker{t: t, name: t.Name(), dir: filepath.Join(dir, "data"), log: filepath.Join(dir, "broker.log"), flags: flags, kafka: props}
	if !useKafka() {
		b.port = listenersPort(t, flags)
		if b.port == 0 {
			b.port = freePort(t)
		}
		b.addr = fmt.Sprintf("127.0.0.1:%d", b.port)
	}
	t.Cleanup(func() {
		err := b.Stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("----- broker log (%s) -----\n%s", b.dir, b.LogTail(80))
		}
		if err != nil {
			t.Errorf("broker stop: %v", err)
		}
	})
	b.Start()
	return b
}

func (b *Broker) Addr() string { return b.addr }

// listenersPort is the port of the first of `--listeners NAME://127.0.0.1:PORT,...` when the
// flags give it (the listener "klamm ready on" names, and Addr), else 0.
func listenersPort(t testing.TB, flags []string) int {
	for i := 0; i+1 < len(flags); i += 2 {
		if flags[i] != "--listeners" {
			continue
		}
		first := strings.TrimSpace(strings.Split(flags[i+1], ",")[0])
		var port int
		if _, host, ok := strings.Cut(first, "://"); !ok || !strings.HasPrefix(host, "127.0.0.1:") {
			t.Fatalf("the first of --listeners must be on 127.0.0.1: %q", first)
		} else if _, err := fmt.Sscanf(strings.TrimPrefix(host, "127.0.0.1:"), "%d", &port); err != nil {
			t.Fatalf("--listeners %q: %v", first, err)
		}
		return port
	}
	return 0
}

func (b *Broker) Start() {
	b.t.Helper()
	b.starts++
	if useKafka() {
		b.startKafka()
		return
	}
	bin := os.Getenv("KLAMM_BIN")
	if bin == "" {
		bin = defaultKlammBin
	}
	if _, err := os.Stat(bin); err != nil {
		b.t.Fatalf("klamm binary not found at %s (set KLAMM_BIN): %v", bin, err)
	}
	f, err := os.OpenFile(b.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		b.t.Fatal(err)
	}
	fmt.Fprintf(f, "\n===== start #%d =====\n", b.starts)
	startOff, _ := f.Seek(0, 2)
	args := append([]string{"--data-dir", b.dir}, b.flags...)
	if listenersPort(b.t, b.flags) == 0 { // --listeners replaces --listen
		args = append([]string{"--listen", b.addr}, args...)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// KLAMM_* variables would change broker defaults the tests rely on.
	env := []string{"NO_COLOR=1"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KLAMM_") || strings.HasPrefix(kv, "KLAMM_LOG_LEVEL=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	// The broker dies with the test binary (go test's timeout, a panic).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		b.t.Fatalf("start klamm: %v", err)
	}
	f.Close()
	b.cmd = cmd
	done := make(chan struct{})
	b.done = done
	go func() { b.exitErr.Store(fmt.Sprint(cmd.Wait())); close(done) }()

	ready := regexp.MustCompile(`klamm ready on 127\.0\.0\.1:` + fmt.Sprint(b.port) + `\b`)
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(b.log); err == nil && int64(len(data)) > startOff && ready.Match(data[startOff:]) {
			return
		}
		select {
		case <-done:
			b.cmd = nil
			b.t.Fatalf("klamm exited (%v) before ready:\n%s", b.exitErr.Load(), b.LogTail(40))
		case <-time.After(10 * time.Millisecond):
		}
	}
	_ = b.Stop(syscall.SIGKILL)
	b.t.Fatalf("klamm not ready within %v:\n%s", readyTimeout, b.LogTail(40))
}

// Stop stops the broker by PID with sig (SIGKILL after stopTimeout); the data dir stays.
// It reports an error if the broker had exited by itself or did not stop on SIGTERM.
func (b *Broker) Stop(sig syscall.Signal) error {
	if useKafka() {
		return b.stopKafka(sig)
	}
	if b.cmd == nil {
		return nil
	}
	cmd, done := b.cmd, b.done
	b.cmd = nil
	select {
	case <-done:
		return fmt.Errorf("klamm had exited by itself: %v", b.exitErr.Load())
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(stopTimeout):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("klamm did not stop within %v of %v", stopTimeout, sig)
	}
	if sig == syscall.SIGTERM {
		if st := cmd.ProcessState; st != nil && !st.Success() {
			if ws, ok := st.Sys().(syscall.WaitStatus); !ok || !(ws.Signaled() && ws.Signal() == syscall.SIGTERM) {
				return fmt.Errorf("klamm exited with %v after SIGTERM", st)
			}
		}
	}
	return nil
}

// Restart stops the broker with SIGTERM and starts it again on the same data dir and port.
func (b *Broker) Restart() {
	b.t.Helper()
	if err := b.Stop(syscall.SIGTERM); err != nil {
		b.t.Fatal(err)
	}
	b.Start()
}

// Kill stops the broker with SIGKILL and starts it again on the same data dir and port.
func (b *Broker) Kill() {
	b.t.Helper()
	if err := b.Stop(syscall.SIGKILL); err != nil {
		b.t.Fatal(err)
	}
	b.Start()
}

func (b *Broker) LogTail(n int) string {
	path := b.log
	if useKafka() {
		path = filepath.Join(b.dir, "kafka.log") // kafka.sh's log of the broker
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "<no log>"
	}
	return tail(data, n)
}

func tail(data []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ---------------------------------------------------------------- reference Kafka

func kafkaScript() string { return filepath.Join(repoRoot(), "compat-tests", "kafka", "kafka.sh") }

// kafkaProps maps the Klamm flags the tests use to Kafka broker properties.
func kafkaProps(t testing.TB, flags []string) []string {
	props := []string{"group.initial.rebalance.delay.ms=0"} // Klamm's default
	for i := 0; i+1 < len(flags); i += 2 {
		name := strings.TrimPrefix(flags[i], "--")
		v := flags[i+1]
		switch name {
		case "num-partitions":
			props = append(props, "num.partitions="+v)
		case "group-min-session-timeout-ms":
			props = append(props, "group.min.session.timeout.ms="+v)
		case "group-consumer-heartbeat-interval-ms":
			// Kafka also bounds it by group.consumer.min.heartbeat.interval.ms (5000).
			props = append(props, "group.consumer.min.heartbeat.interval.ms="+v, "group.consumer.heartbeat.interval.ms="+v)
		case "group-consumer-session-timeout-ms":
			props = append(props, "group.consumer.min.session.timeout.ms="+v, "group.consumer.session.timeout.ms="+v)
		case "transaction-abort-timed-out-transaction-cleanup-interval-ms":
			props = append(props, "transaction.abort.timed.out.transaction.cleanup.interval.ms="+v)
		case "auto-create-topics-enable":
			props = append(props, "auto.create.topics.enable="+v)
		default:
			t.Fatalf("no Kafka property for Klamm flag --%s", name)
		}
	}
	return props
}

func (b *Broker) startKafka() {
	b.t.Helper()
	script := kafkaScript()
	if _, err := os.Stat(script); err != nil {
		b.t.Fatalf("COMPAT_BROKER=kafka but %s is missing: %v", script, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	args := []string{"start", b.dir}
	if b.starts == 1 { // a restart reuses DIR/server.properties
		args = append(args, kafkaProps(b.t, b.flags)...)
		args = append(args, b.kafka...)
	}
	cmd := exec.CommandContext(ctx, script, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.t.Fatalf("kafka.sh start: %v\nstdout: %s\nstderr: %s", err, out, stderr.String())
	}
	addr := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	re := regexp.MustCompile(`^127\.0\.0\.1:\d+$`)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); re.MatchString(line) {
			addr = line
		}
	}
	if addr == "" {
		b.t.Fatalf("kafka.sh start printed no 127.0.0.1:PORT line:\n%s\n%s", out, stderr.String())
	}
	if b.addr != "" && b.addr != addr {
		b.t.Logf("kafka restarted on %s (was %s)", addr, b.addr)
	}
	b.addr = addr
	b.cmd = &exec.Cmd{} // marks "running"
}

func (b *Broker) stopKafka(sig syscall.Signal) error {
	if b.cmd == nil {
		return nil
	}
	b.cmd = nil
	name := "TERM"
	if sig == syscall.SIGKILL {
		name = "KILL"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kafkaScript(), "stop", b.dir, name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("kafka.sh stop %s: %v\n%s", name, err, out)
	}
	return nil
}

// ---------------------------------------------------------------- small helpers

var topicSeq atomic.Int64

// topicName returns a topic name unique to the test.
func topicName(t *testing.T, suffix string) string {
	base := regexp.MustCompile(`[^a-zA-Z0-9._-]`).ReplaceAllString(t.Name(), "-")
	if len(base) > 150 {
		base = base[:150]
	}
	return fmt.Sprintf("%s-%s-%d", base, suffix, topicSeq.Add(1))
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond every 50 ms until it is true or the timeout passes (then fails).
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
