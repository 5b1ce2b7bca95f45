package sim

import (
	"fmt"
	"testing"
	"time"
)

func TestTmpStaleness(t *testing.T) {
	for _, n := range []int{32, 128} {
		for _, loss := range []float64{0, 0.1, 0.3, 0.5} {
			c := New(Config{N: n, Seed: 1, Net: NetConfig{RequestLoss: loss, ResponseLoss: loss, Delay: ms, Jitter: ms}})
			c.StartConverged()
			c.RunFor(20 * time.Second)
			hist := map[int]int{}
			total := 0
			// staleness at each member's tick, in whole rounds
			c.OnTick = func(i int) {
				now := c.Now()
				for _, r := range c.Member(i).Members() {
					if r.Addr == Addr(i) {
						continue
					}
					lr, _ := c.Member(i).LastRise(r.Addr)
					k := int(now.Sub(lr) / time.Second)
					hist[k]++
					total++
				}
			}
			dur := 100
			if n == 128 {
				dur = 50
			}
			c.RunFor(time.Duration(dur) * time.Second)
			s := fmt.Sprintf("n=%d loss=%.1f:", n, loss)
			cum := 0
			for k := 0; k < 25; k++ {
				if hist[k] == 0 && cum == total {
					break
				}
				cum += hist[k]
				s += fmt.Sprintf(" >=%d:%.2g", k+1, float64(total-cum)/float64(total))
			}
			t.Log(s)
		}
	}
}
