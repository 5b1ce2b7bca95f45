package gossip_test

import (
	"context"
	"encoding/gob"
	"fmt"
	"log"
	"net/rpc"
	"time"

	"github.com/gossipfd/gossip"
)

// Service is application data: what a member advertises. Types other than
// Go's basic ones must be registered with gob in every process.
type Service struct {
	Name     string
	Endpoint string
}

func init() { gob.Register(Service{}) }

// waitFor waits until g sees n live members, signalled on g.C.
func waitFor(g *gossip.Gossip, n int) {
	deadline := time.After(30 * time.Second)
	for len(g.GetMembers()) != n {
		select {
		case <-g.C:
		case <-deadline:
			return
		}
	}
}

// The original form: New, then Run until Close.
func ExampleNew() {
	g := gossip.New("127.0.0.1:0", "my data", nil)
	g.Tgossip = 100 * time.Millisecond // may be changed before Run
	go g.Run()
	defer g.Close()
	// ...
}

// The error-returning form: a Config, NewWithConfig and Start.
func ExampleNewWithConfig() {
	seed, err := gossip.NewWithConfig(gossip.Config{
		Addr: "127.0.0.1:0",
		Data: Service{Name: "db", Endpoint: "10.0.0.1:5432"},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := seed.Start(); err != nil {
		log.Fatal(err)
	}
	defer seed.Close()

	g, err := gossip.NewWithConfig(gossip.Config{
		Addr:  "127.0.0.1:0",
		Seeds: []string{seed.Addr()},
		Data:  Service{Name: "web", Endpoint: "http://10.0.0.2:8080"},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := g.Start(); err != nil {
		log.Fatal(err)
	}
	defer g.Close()

	waitFor(g, 2)
	for _, m := range g.GetMembers() {
		fmt.Println(m.Data.(Service).Name)
	}
	// Unordered output:
	// db
	// web
}

// Shutdown leaves the cluster and closes the member; C is closed then, so a
// loop over it ends.
func ExampleGossip_Shutdown() {
	g, err := gossip.NewWithConfig(gossip.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	if err := g.Start(); err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	go func() {
		<-ctx.Done() // a signal, say
		if err := g.Shutdown(context.Background()); err != nil {
			log.Print(err)
		}
	}()
	for range g.C {
		// read g.GetMembers()
	}
	fmt.Println("closed")
	// Output: closed
}

// Watch C and read the members after each signal.
func ExampleGossip_GetMembers() {
	g, err := gossip.NewWithConfig(gossip.Config{Addr: "127.0.0.1:0", Data: "v1"})
	if err != nil {
		log.Fatal(err)
	}
	if err := g.Start(); err != nil {
		log.Fatal(err)
	}
	defer g.Close()

	g.SetData("v2") // C is signalled
	<-g.C
	for _, m := range g.GetMembers() {
		fmt.Println(m.Data)
	}
	// Output: v2
}

// UpdateData is SetData with an error.
func ExampleGossip_UpdateData() {
	g, err := gossip.NewWithConfig(gossip.Config{Addr: "127.0.0.1:0", MaxDataSize: 256})
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	fmt.Println(g.UpdateData(make([]byte, 300)))
	fmt.Println(g.UpdateData(Service{Name: "ok"}))
	// Output:
	// gossip: data too large: 351 bytes encoded, limit 256
	// <nil>
}

// Any Go program can read a live member with a plain net/rpc client.
func Example_rpc() {
	g, err := gossip.NewWithConfig(gossip.Config{Addr: "127.0.0.1:0", Data: "hello"})
	if err != nil {
		log.Fatal(err)
	}
	if err := g.Start(); err != nil {
		log.Fatal(err)
	}
	defer g.Close()

	c, err := rpc.Dial("tcp", g.Addr())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	var resp gossip.GetMembersResponse
	if err := c.Call("Gossip.GetMembers", gossip.GetMembersRequest{}, &resp); err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(resp.Members), resp.Members[0].Data)
	// Output: 1 hello
}

// FalseReportProbability gives the chance of a false failure report.
func ExampleFalseReportProbability() {
	fmt.Printf("%.1e\n", gossip.FalseReportProbability(32, 0.1, gossip.Nfailures))
	// Output: 3.8e-11
}
