// Package harness drives wahook's ingest and worker binaries as real processes
// against AWS-compatible backends, for the race suite (package scenarios) and
// the load benchmark (cmd/bench).
//
// It owns everything a scenario needs and nothing it asserts:
//
//   - the backend: LocalStack through testcontainers when a Docker engine
//     answers, endpoints from the environment, or the repository's local
//     emulators (shared/awstest) — see Backend;
//   - the binaries, built once per run (Binaries);
//   - per-test resources and processes (Stack): unique tables and queues, N
//     ingest and M worker processes on free ports, each behind its own
//     Toxiproxy links to DynamoDB and SQS (Link), each logging to a file whose
//     tail is printed when the test fails;
//   - a client that signs like Meta and retries like Meta (Client), payloads
//     shaped like the WhatsApp Cloud API's (Gen, Payload);
//   - readers of the backends (ledger, messages, audit, queues) and the
//     invariants every scenario checks on them (Stack.CheckInvariants);
//   - Eventually, to await a condition instead of sleeping.
package harness
