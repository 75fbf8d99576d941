package main

import (
	"fmt"
	"io"
	"maps"
	"math"
	"strings"
	"time"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
	"github.com/checkstack/satellite-backend/shared/sweep"
)

// report prints the model's bills.
type report struct {
	fig            figures
	st             stack
	sc             scenario
	sizes          []float64
	telemetryEvery time.Duration
	tpl            *samtemplate.Template
}

var provisionedMode = provisioned(dynamoPerWCUHour, dynamoPerRCUHour, dynamoTargetUtilization)

// at is the bill of n satellites, the scenario changed by change.
func (r report) at(n float64, change func(*scenario, *stack)) bill {
	sc, st := r.sc, r.st
	st.memory = maps.Clone(r.st.memory)
	sc.satellites = n
	if change != nil {
		change(&sc, &st)
	}
	b, err := model(r.fig, st, sc)
	if err != nil {
		fail(err)
	}
	return b
}

func withMemory(mb float64) func(*scenario, *stack) {
	return func(_ *scenario, st *stack) { st.memory["MessageFunction"] = mb }
}

func (r report) print(w io.Writer) error {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	modes := []capacityMode{onDemand, provisionedMode}
	first := r.at(r.sizes[0], nil)

	p("Per-message figures (measured by the tests; ms at a memory size = AWS waits + CPU x max(1, 1769/MB)):\n\n")
	p("%-32s %12s %5s %5s %5s %5s %7s %7s %6s %6s %6s\n", "message", "a month", "RRU", "WRU", "(idx)", "posts", "CPU ms", "local", "@256", "@512", "log B")
	for _, f := range first.frames {
		at := func(mb float64) float64 {
			if f.function != "MessageFunction" {
				mb = r.st.memory[f.function]
			}
			return durationMs(f.waitsMs, f.cpuMs, mb)
		}
		p("%-32s %12.0f %5.2f %5.2f %5.2f %5.0f %7.2f %7.1f %6.0f %6.0f %6.0f\n", f.name, f.volume, f.read, f.write, f.indexWrite, f.posts, f.cpuMs, f.localMs, at(256), at(512), f.logB)
	}
	p("\n(RRU and WRU per frame on an instance without the binding cached, (idx) the WRU on indexes; CPU ms measured in\n")
	p("process here, local ms the handler's median against DynamoDB Local; @256 and @512 the billed ms on AWS at that\n")
	p("memory, waiting %.0f ms per AWS request; log B: bytes logged at INFO. $connect and $disconnect run at %.0f MB.)\n",
		r.sc.awsLatencyMs, r.st.memory["ConnectFunction"])

	sc := r.sc
	p("\nScenario: heartbeat every %s, %.0f assignment(s) in %.0f environments with a result every %s each (every result\n",
		sc.heartbeat, sc.assignments, sc.environments, sc.resultEvery)
	p("names its environment), a reconnect every %s, %.0f package refreshes a month, %.0f%% of frames on an\n",
		sc.reconnectEvery, sc.refreshesPerMon, 100*sc.coldShare)
	p("instance without the binding cached, message function at %.0f MB, access logs %s; 30-day month. Provisioned: target\n",
		r.st.memory["MessageFunction"], r.st.accessLogs[0].label)
	p("tracking at %.0f%%, $%.4f a million WRU and $%.4f a million RRU, assuming a steady load.\n",
		100*dynamoTargetUtilization, provisionedMode.perMillionWRU, provisionedMode.perMillionRRU)

	bills := make([]bill, len(r.sizes))
	for i, n := range r.sizes {
		bills[i] = r.at(n, nil)
		printBill(w, fmt.Sprintf("%s satellites", thousands(n)), bills[i], modes)
	}

	p("\nPer satellite a month:\n\n%-22s %12s %12s\n", "", "on-demand", "provisioned")
	for i, n := range r.sizes {
		p("%-22s %12s %12s\n", thousands(n)+" satellites", dollars4(total(bills[i].lines, onDemand)/n), dollars4(total(bills[i].lines, provisionedMode)/n))
	}
	p("%-22s %12s %12s   (whatever the fleet; not in the figures per satellite)\n", "per stack", dollars2(total(first.perStack, onDemand)), dollars2(total(first.perStack, provisionedMode)))
	sw, once := sweepCostOf(r.fig.sweep, r.st, first.sc, sweep.Passes), sweepCostOf(r.fig.sweep, r.st, first.sc, 1)
	sweepDollars := func(c sweepCost) float64 {
		return c.invocations/1e6*lambdaPerMillionRequests + c.gbSeconds*lambdaPerGBSecondArm + c.readUnits/1e6*dynamoPerMillionRRU
	}
	p("The heartbeat sweep's %d passes a minute cost %s a month (on-demand, the waits between passes billed at %.0f MB); one pass a minute would cost %s.\n",
		sweep.Passes, dollars2(sweepDollars(sw)), r.st.memory["SweepFunction"], dollars2(sweepDollars(once)))
	p("\nAPI Gateway's second price tier ($%.2f a million past a billion messages a month) starts at %s satellites.\n",
		apiGatewayPerMillionOver1B, thousands(1e9/(first.messages/first.sc.satellites)))
	r.printCrossover(w)
	r.printVariants(w, bills)
	r.printMemory(w)
	for _, b := range bills {
		for _, warn := range b.warnings {
			p("Warning (%s satellites): %s.\n", thousands(b.sc.satellites), warn)
		}
	}
	if r.st.optionalKmsKeys > 0 {
		p("Connectivity notifications, when on, add %.0f KMS key ($%.2f a month) and their SNS deliveries.\n", r.st.optionalKmsKeys, r.st.optionalKmsKeys*kmsKeyPerMonth)
	}
	p("The feed's consumer receives %.1f GB a month per 1,000 satellites: free within the region; from outside AWS, data transfer out adds about $%.2f (at $0.09/GB).\n",
		first.feedGB/first.sc.satellites*1000, first.feedGB/first.sc.satellites*1000*0.09)
	p("Prices: %s.\n", pricesAsOf)
	return nil
}

// printBill prints a fleet's lines, a column per capacity mode.
func printBill(w io.Writer, title string, b bill, modes []capacityMode) {
	width := len("volume a month")
	for _, l := range append(append([]line(nil), b.lines...), b.perStack...) {
		width = max(width, len(l.detail))
	}
	row := func(item, detail string, cells ...string) {
		fmt.Fprintf(w, "| %-34s | %-*s |", item, width, detail)
		for _, c := range cells {
			fmt.Fprintf(w, " %11s |", c)
		}
		fmt.Fprintln(w)
	}
	cells := func(l []line) []string {
		var out []string
		for _, m := range modes {
			out = append(out, dollars2(total(l, m)))
		}
		return out
	}
	fmt.Fprintf(w, "\n%s:\n\n", title)
	var heads []string
	for _, m := range modes {
		heads = append(heads, m.name)
	}
	row("item", "volume a month", heads...)
	fmt.Fprintf(w, "|%s|%s|%s\n", strings.Repeat("-", 36), strings.Repeat("-", width+2), strings.Repeat(strings.Repeat("-", 13)+"|", len(modes)))
	for _, l := range b.lines {
		row(l.item, l.detail, cells([]line{l})...)
	}
	row("total", fmt.Sprintf("%s satellites", thousands(b.sc.satellites)), cells(b.lines)...)
	for _, l := range b.perStack {
		row(l.item, l.detail, cells([]line{l})...)
	}
	row("total with the per-stack lines", "", cells(append(append([]line(nil), b.lines...), b.perStack...))...)
}

// printCrossover finds the fleet at which provisioned capacity costs what
// on demand does, per-stack lines included.
func (r report) printCrossover(w io.Writer) {
	diff := func(n float64) float64 {
		b := r.at(n, nil)
		return b.all(onDemand) - b.all(provisionedMode)
	}
	wBreak := breakEvenUtilization(dynamoPerWCUHour, dynamoPerMillionWRU)
	rBreak := breakEvenUtilization(dynamoPerRCUHour, dynamoPerMillionRRU)
	lo, hi := 1.0, 1e6
	switch {
	case diff(lo) >= 0:
		fmt.Fprintf(w, "\nCrossover: provisioned costs less at any fleet size.\n")
	case diff(hi) < 0:
		fmt.Fprintf(w, "\nCrossover: provisioned costs more up to %s satellites.\n", thousands(hi))
	default:
		for range 60 {
			mid := math.Sqrt(lo * hi)
			if diff(mid) >= 0 {
				hi = mid
			} else {
				lo = mid
			}
		}
		fmt.Fprintf(w, "\nCrossover: provisioned costs less from about %.0f satellites, at a steady load.\n", hi)
	}
	fmt.Fprintf(w, "The model assumes a steady load that target tracking follows at %.0f%% utilization. Provisioned stays cheaper while the\n", 100*dynamoTargetUtilization)
	fmt.Fprintf(w, "capacity it keeps is used on average above %.0f%% (writes) and %.0f%% (reads): a fleet's load is steady (heartbeats,\n", 100*wBreak, 100*rBreak)
	fmt.Fprintf(w, "results), but a mass reconnect after an outage (15 WRU an authenticate) comes faster than capacity scales up.\n")
}

// printVariants prints what the other access log variants and the
// telemetry variant change.
func (r report) printVariants(w io.Writer, bills []bill) {
	fmt.Fprintf(w, "\nVariants, per satellite a month (on-demand; provisioned in brackets):\n\n")
	delta := func(label string, change func(*scenario, *stack)) {
		var parts []string
		for i, n := range r.sizes {
			v := r.at(n, change)
			parts = append(parts, fmt.Sprintf("%s satellites %s (%s)", thousands(n),
				signed4((total(v.lines, onDemand)-total(bills[i].lines, onDemand))/n),
				signed4((total(v.lines, provisionedMode)-total(bills[i].lines, provisionedMode))/n)))
		}
		fmt.Fprintf(w, "- %s: %s\n", label, strings.Join(parts, "; "))
	}
	for i, v := range r.st.accessLogs {
		if i == 0 {
			continue
		}
		delta("access logs "+v.label, func(sc *scenario, _ *stack) { sc.accessLog = i })
	}
	label := fmt.Sprintf("telemetry, a logstream batch of %.0f bytes every %s per satellite", float64(r.fig.messages["telemetry_logstream_8k"].FrameBytes), r.telemetryEvery)
	delta(label, func(sc *scenario, _ *stack) { sc.telemetryEvery = r.telemetryEvery })
	base, tel := r.at(r.sizes[0], nil), r.at(r.sizes[0], func(sc *scenario, _ *stack) { sc.telemetryEvery = r.telemetryEvery })
	var parts []string
	for i, l := range tel.lines {
		d := l.cost(onDemand)
		if i < len(base.lines) && base.lines[i].item == l.item {
			d -= base.lines[i].cost(onDemand)
		}
		if math.Abs(d) >= 0.005 {
			parts = append(parts, fmt.Sprintf("%s %s", l.item, signed2(d)))
		}
	}
	fmt.Fprintf(w, "  its lines at %s satellites, on-demand, $ a month: %s.\n", thousands(r.sizes[0]), strings.Join(parts, "; "))
}

// printMemory compares the message function at 256 and 512 MB.
func (r report) printMemory(w io.Writer) {
	fmt.Fprintf(w, "\nMessage function memory (on-demand, per satellite a month; Lambda duration line in brackets):\n\n")
	for _, n := range r.sizes {
		var parts []string
		for _, mb := range []float64{256, 512} {
			b := r.at(n, withMemory(mb))
			parts = append(parts, fmt.Sprintf("%.0f MB %s (%s)", mb, dollars4(total(b.lines, onDemand)/n), dollars4(lineCost(b, "Lambda duration")/n)))
		}
		fmt.Fprintf(w, "- %s satellites: %s\n", thousands(n), strings.Join(parts, ", "))
	}
	fmt.Fprintf(w, "Below %d MB a frame's CPU costs the same GB-s at any memory (its time grows as memory shrinks) while its\n", lambdaMBPerVCPU)
	fmt.Fprintf(w, "waits on AWS cost in proportion to memory: less memory is cheaper, and slower (the @256 and @512 columns).\n")
}

func lineCost(b bill, item string) float64 {
	for _, l := range b.lines {
		if l.item == item {
			return l.cost(onDemand)
		}
	}
	return 0
}

func thousands(n float64) string {
	s := fmt.Sprintf("%.0f", n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func dollars2(v float64) string { return "$" + thousandsDecimal(v, 2) }
func dollars4(v float64) string { return fmt.Sprintf("$%.4f", v) }
func signed4(v float64) string  { return fmt.Sprintf("%+.4f", v) }
func signed2(v float64) string  { return fmt.Sprintf("%+.2f", v) }

func thousandsDecimal(v float64, places int) string {
	s := fmt.Sprintf("%.*f", places, v)
	whole, frac, _ := strings.Cut(s, ".")
	return thousands(mustFloat(whole)) + "." + frac
}

func mustFloat(s string) float64 {
	var f float64
	fmt.Sscan(s, &f)
	return f
}
