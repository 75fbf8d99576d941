package main

import (
	"math"
	"testing"
)

func near(got, want float64) bool { return math.Abs(got-want) <= 1e-9*math.Max(1, math.Abs(want)) }

func TestTieredPricesEachTierItsShare(t *testing.T) {
	for _, tc := range []struct {
		name  string
		usage float64
		want  float64
	}{
		{"nothing", 0, 0},
		{"within the first tier", 357.5e6, 357.50},
		{"exactly the first billion", 1e9, 1000},
		{"past it, the rest at $0.80", 35.75e9, 1000 + 34.75e3*0.80},
	} {
		if got := tiered(tc.usage, apiGatewayMessageTiers); !near(got, tc.want) {
			t.Errorf("%s: tiered(%g) = %.4f, want %.4f", tc.name, tc.usage, got, tc.want)
		}
	}
	// Lambda's arm64 GB-seconds: 10 % off from 7.5 billion, 20 % from 18.75.
	got := tiered(20e9, lambdaGBSecondTiers)
	want := 7.5e9*lambdaPerGBSecondArm + 11.25e9*lambdaPerGBSecondArm*0.9 + 1.25e9*lambdaPerGBSecondArm*0.8
	if !near(got, want) {
		t.Errorf("20 billion GB-s: %.2f, want %.2f", got, want)
	}
	// Lambda's logs: 60 TB cost $12,500 (duckbillgroup.com's example).
	if got := tiered(60e3, lambdaLogTiers); !near(got, 12500) {
		t.Errorf("60 TB of Lambda logs: %.2f, want 12500", got)
	}
}

func TestProvisionedPricePerMillionUnitsAtTargetUtilization(t *testing.T) {
	m := provisioned(0.00065, 0.00013, 0.70)
	// A million units a month at 70 %: 1e6/3600/0.7 = 396.8 capacity-hours.
	if want := 1e6 / 3600 / 0.7 * 0.00065; !near(m.perMillionWRU, want) || math.Abs(m.perMillionWRU-0.2579) > 0.0001 {
		t.Errorf("provisioned $/M WRU = %.4f, want %.4f (about $0.2579)", m.perMillionWRU, want)
	}
	if math.Abs(m.perMillionRRU-0.0516) > 0.0001 {
		t.Errorf("provisioned $/M RRU = %.4f, want about $0.0516", m.perMillionRRU)
	}
	// At full use a WCU-hour serves 3,600 write units.
	if full := provisioned(0.00065, 0.00013, 1); !near(full.perMillionWRU*3600/1e6, 0.00065) {
		t.Errorf("at 100%% a million WRU cost %.4f", full.perMillionWRU)
	}
	// Below 28.9 % use, on demand is cheaper.
	if u := breakEvenUtilization(0.00065, 0.625); math.Abs(u-0.2889) > 0.0001 {
		t.Errorf("break-even utilization %.4f, want 0.2889", u)
	}
	l := line{dollars: 1, wru: 2e6, rru: 4e6}
	if got := l.cost(onDemand); !near(got, 1+2*0.625+4*0.125) {
		t.Errorf("on-demand cost %.4f", got)
	}
	if got := (line{dollars: 5, only: "provisioned"}).cost(onDemand); got != 0 {
		t.Errorf("a provisioned-only line costs %.2f on demand", got)
	}
}

func TestDurationScalesCPUBelowOneVCPU(t *testing.T) {
	for _, tc := range []struct{ waits, cpu, mb, want float64 }{
		{12, 1.7, 512, math.Ceil(12 + 1.7*1769/512.0)},
		{12, 1.7, 256, math.Ceil(12 + 1.7*1769/256.0)},
		{12, 1.7, 3538, math.Ceil(12 + 1.7)}, // never faster than the CPU measured
		{0, 0.2, 1769, 1},                    // whole milliseconds
	} {
		if got := durationMs(tc.waits, tc.cpu, tc.mb); got != tc.want {
			t.Errorf("durationMs(%g, %g, %g) = %g, want %g", tc.waits, tc.cpu, tc.mb, got, tc.want)
		}
	}
}
