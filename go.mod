module github.com/gossipfd/gossip

go 1.24

require (
	github.com/hashicorp/go-multierror v1.1.1
	github.com/sirupsen/logrus v1.10.2
)

require (
	github.com/hashicorp/errwrap v1.0.0 // indirect
	golang.org/x/sys v0.13.0 // indirect
)
