//go:build !race

package sim

// raceEnabled reports whether the tests run with the race detector, which
// slows the simulations about fivefold.
const raceEnabled = false
