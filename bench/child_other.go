//go:build !linux

package main

import "syscall"

// childProcAttr is nothing outside Linux: a child outlives a bench that
// dies, until its standard input ends.
func childProcAttr() *syscall.SysProcAttr { return nil }
