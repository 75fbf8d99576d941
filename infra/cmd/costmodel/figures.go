package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/checkstack/satellite-backend/infra/testenv"
)

// figure is one message's measured cost.
type figure testenv.CostFigure

// perFrame is what a frame costs in the scenario: a share of frames on an
// instance without the connection's binding cached (cold), the rest warm.
type perFrame struct {
	read, write, indexWrite, requests, cpuMs float64
}

func (f figure) at(coldShare float64) perFrame {
	if f.ColdDynamoDB == 0 { // one instance kind measured ($connect, authenticate, $disconnect)
		return perFrame{f.ReadUnits, f.WriteUnits, f.IndexWriteUnits, float64(f.DynamoDB), f.CPUMs}
	}
	mix := func(cold, warm float64) float64 { return coldShare*cold + (1-coldShare)*warm }
	cpu := f.CPUMs
	if f.ColdCPUMs > 0 {
		cpu = mix(f.ColdCPUMs, f.CPUMs)
	}
	return perFrame{
		mix(f.ColdReadUnits, f.ReadUnits), mix(f.ColdWriteUnits, f.WriteUnits), mix(f.ColdIndexWriteUnits, f.IndexWriteUnits),
		mix(float64(f.ColdDynamoDB), float64(f.DynamoDB)), cpu,
	}
}

// billedMessages is how many messages API Gateway bills for a frame: one
// per 32 KB.
func (f figure) billedMessages() float64 {
	return math.Max(1, math.Ceil(float64(f.FrameBytes)/(apiGatewayMessageKB<<10)))
}

// figures is everything the tests measured.
type figures struct {
	messages map[string]figure
	heart    map[string]float64
	sweep    map[string]float64
	stored   map[string][]storedItem // by table logical id
}

func readFigures(dir string) (figures, error) {
	var f figures
	for name, v := range map[string]any{"messages.json": &f.messages, "heartbeat.json": &f.heart, "sweep.json": &f.sweep, "storage.json": &f.stored} {
		if err := readJSON(filepath.Join(dir, name), v); err != nil {
			return f, err
		}
	}
	// The steady-state heartbeat (ten minutes of them): the index moves once
	// a minute, which one heartbeat alone does not show.
	hb, ok := f.messages["heartbeat"]
	if !ok {
		return f, fmt.Errorf("no heartbeat figure in %s", dir)
	}
	hb.WriteUnits, hb.ColdWriteUnits = f.heart["writeUnits"], f.heart["writeUnits"]
	hb.IndexWriteUnits, hb.ColdIndexWriteUnits = f.heart["indexWriteUnits"], f.heart["indexWriteUnits"]
	f.messages["heartbeat"] = hb
	return f, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w (make cost measures the figures first)", err)
	}
	return json.Unmarshal(b, v)
}
