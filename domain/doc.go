// Package domain holds Vexil's domain model: projects, environments, API tokens, flags, segments
// and the events they emit, plus the pure functions that evaluate flags and analyse experiments.
//
// The package is pure on purpose: it imports the standard library (and gonum for statistics) and
// nothing that touches a database, the network, a framework or the operating system. Aggregates
// are rebuilt by folding their events; commands validate input and return new events, they never
// save themselves. A test enforces the purity (purity_test.go).
package domain
