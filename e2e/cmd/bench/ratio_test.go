package main

import "testing"

func TestMedianRatio(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rounds []ratioRound
		want   float64
	}{
		{"none", nil, 0},
		{"one", []ratioRound{{Wahook: 90, Floor: 100}}, 0.9},
		{"odd, unsorted", []ratioRound{{Wahook: 98, Floor: 100}, {Wahook: 80, Floor: 100}, {Wahook: 180, Floor: 200}}, 0.9},
		{"even: the lower middle", []ratioRound{{Wahook: 95, Floor: 100}, {Wahook: 80, Floor: 100}, {Wahook: 85, Floor: 100}, {Wahook: 99, Floor: 100}}, 0.85},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := medianRatio(tc.rounds); got != tc.want {
				t.Errorf("medianRatio = %v, want %v", got, tc.want)
			}
		})
	}
}
