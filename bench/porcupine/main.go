// Command porcupine-times checks tectonic cas-register histories (JSON Lines, Jepsen's
// independent [key, value] tuples) with Porcupine and prints one JSON line per file:
// {"file": ..., "result": "ok" | "illegal" | "unknown", "seconds": ..., "cpu_seconds": ...,
// "fastest_seconds": ..., "fastest_cpu_seconds": ..., "runs_seconds": [...], "runs_cpu_seconds": [...]}
// (seconds and cpu_seconds: the medians of the -repeat runs, wall time and the CPU time of
// all its goroutines; on a shared machine the CPU time is the steadier figure).
//
// It exists only to record Porcupine's times for bench/linearizability.py, on the same
// machine and the same histories (see bench/porcupine/README.md for how to build it).
// The model is Porcupine's own etcd model from its tests: a failed cas is an observation
// (the register held another value), an op of unknown outcome returns at the end of the
// history with an output that every state accepts, as Porcupine's Jepsen log parser does.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"syscall"
	"time"

	"github.com/anishathalye/porcupine"
)

type input struct {
	op   uint8 // 0 read, 1 write, 2 cas
	arg1 int
	arg2 int
}

type output struct {
	ok      bool
	value   int
	unknown bool
}

type record struct {
	Type    string            `json:"type"`
	Process json.RawMessage   `json:"process"`
	F       string            `json:"f"`
	Value   []json.RawMessage `json:"value"`
}

func model(initial int) porcupine.Model {
	return porcupine.Model{
		PartitionEvent: func(history []porcupine.Event) [][]porcupine.Event {
			byKey := map[int][]porcupine.Event{}
			var order []int
			for _, e := range history {
				k := e.Metadata.(int)
				if _, seen := byKey[k]; !seen {
					order = append(order, k)
				}
				byKey[k] = append(byKey[k], e)
			}
			var parts [][]porcupine.Event
			for _, k := range order {
				parts = append(parts, byKey[k])
			}
			return parts
		},
		Init: func() interface{} { return initial },
		Step: func(state, in, out interface{}) (bool, interface{}) {
			st, inp, o := state.(int), in.(input), out.(output)
			switch inp.op {
			case 0:
				return o.unknown || o.value == st, st
			case 1:
				return true, inp.arg1
			default:
				ok := o.unknown || (inp.arg1 == st) == o.ok
				if inp.arg1 == st {
					return ok, inp.arg2
				}
				return ok, st
			}
		},
	}
}

func parse(path string) ([]porcupine.Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var events []porcupine.Event
	open := map[string]int{}   // process -> id of its open call
	keyOf := map[string]int{}  // process -> key of its open call
	inputOf := map[int]input{} // id -> input
	dropped := map[int]bool{}  // ids of failed reads and writes: they never happened
	id := 0
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 1<<20), 1<<26)
	for scanner.Scan() {
		var r record
		if err := json.Unmarshal(scanner.Bytes(), &r); err != nil {
			return nil, err
		}
		p := string(r.Process)
		if p == `"nemesis"` || len(r.Value) != 2 {
			continue
		}
		var key int
		if err := json.Unmarshal(r.Value[0], &key); err != nil {
			return nil, err
		}
		switch r.Type {
		case "invoke":
			in := input{}
			switch r.F {
			case "write":
				in.op = 1
				json.Unmarshal(r.Value[1], &in.arg1)
			case "cas":
				in.op = 2
				var pair []int
				json.Unmarshal(r.Value[1], &pair)
				in.arg1, in.arg2 = pair[0], pair[1]
			}
			open[p], keyOf[p], inputOf[id] = id, key, in
			events = append(events, porcupine.Event{Kind: porcupine.CallEvent, Value: in, Id: id, Metadata: key})
			id++
		case "ok", "fail":
			cid := open[p]
			delete(open, p)
			in := inputOf[cid]
			if r.Type == "fail" && in.op != 2 {
				dropped[cid] = true
				continue
			}
			o := output{ok: r.Type == "ok"}
			if in.op == 0 {
				json.Unmarshal(r.Value[1], &o.value)
			}
			events = append(events, porcupine.Event{Kind: porcupine.ReturnEvent, Value: o, Id: cid, Metadata: key})
		case "info":
			// stays open: returns at the end of the history
		}
	}
	if err := scanner.Err(); err != nil {
		return nil, err
	}
	for p, cid := range open {
		events = append(events, porcupine.Event{Kind: porcupine.ReturnEvent, Value: output{unknown: true}, Id: cid, Metadata: keyOf[p]})
	}
	kept := events[:0]
	for _, e := range events {
		if !dropped[e.Id] {
			kept = append(kept, e)
		}
	}
	return kept, nil
}

func main() {
	initial := flag.Int("initial", 0, "the registers' initial value")
	timeout := flag.Duration("timeout", 120*time.Second, "give up (result unknown) after this long")
	repeat := flag.Int("repeat", 3, "runs per file; the median (and the fastest) is printed")
	verbose := flag.Bool("verbose", false, "check every partition and compute its linearization info "+
		"(CheckEventsVerbose, what a visualization needs) instead of stopping at the first illegal one")
	flag.Parse()
	for _, path := range flag.Args() {
		events, err := parse(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			os.Exit(2)
		}
		var walls, cpus []float64
		var result porcupine.CheckResult
		for i := 0; i < *repeat; i++ {
			cpu0 := cpuTime()
			started := time.Now()
			if *verbose {
				result, _ = porcupine.CheckEventsVerbose(model(*initial), events, *timeout)
			} else {
				result = porcupine.CheckEventsTimeout(model(*initial), events, *timeout)
			}
			walls = append(walls, time.Since(started).Seconds())
			cpus = append(cpus, (cpuTime() - cpu0).Seconds())
			if result == porcupine.Unknown || walls[len(walls)-1] >= timeout.Seconds() {
				break // a timed-out run is not repeated (verbose says illegal at its timeout)
			}
		}
		names := map[porcupine.CheckResult]string{porcupine.Ok: "ok", porcupine.Illegal: "illegal", porcupine.Unknown: "unknown"}
		line, _ := json.Marshal(map[string]interface{}{"file": path, "result": names[result],
			"seconds": median(walls), "cpu_seconds": median(cpus),
			"fastest_seconds": least(walls), "fastest_cpu_seconds": least(cpus),
			"runs_seconds": walls, "runs_cpu_seconds": cpus})
		fmt.Println(string(line))
	}
}

// cpuTime is the user and system time this process has used so far, all threads.
func cpuTime() time.Duration {
	var usage syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &usage)
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
}

// median of the runs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func least(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[0]
}
