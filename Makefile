# wahook — the two commands that matter: `make up` and `make test`.
SHELL := /usr/bin/env bash
MODULES := shared ingest worker e2e
GO ?= go
# Test flags for every module; `make test TESTFLAGS=-v` for more.
TESTFLAGS ?=
# Benchmark flags, e.g. `make bench BENCHFLAGS="-o bench-results -events 4000"`; SOAK=10m for the soak.
BENCHFLAGS ?=
SOAK ?=
# The backends `make test` runs the e2e CI form against (WAHOOK_E2E_BACKEND):
# dynalite + ElasticMQ, and dynalite + LocalStack's SQS (which keeps abandoned
# long polls open, as AWS does), both at once (e2e/ci.sh). `make test
# E2E_BACKENDS=emulators` for one.
E2E_BACKENDS ?= emulators localstack-sqs
# Scenarios left out on one route (go test -skip), each an open finding named in
# localstack/README.md; none at present.
E2E_SKIP_localstack-sqs :=

.PHONY: up test lint deploy-lint e2e e2e-report bench inspect wahook tools build fuzz clean

## up: start emulators, ingest and worker in the foreground (Ctrl-C stops all). WORKERS=2 for two worker processes; WAHOOK_SQS=localstack for LocalStack's SQS instead of ElasticMQ.
up:
	@bash localstack/up.sh

## test: lint, then every module's tests with -race (unit, integration against local emulators, the e2e race suite in its CI form on each of E2E_BACKENDS).
test: tools lint
	@echo "== go test -race shared ingest worker (one go test: packages of all three share the cores)"
	@$(GO) test -race -count=1 -timeout 20m $(TESTFLAGS) ./shared/... ./ingest/... ./worker/...
	@GO=$(GO) TESTFLAGS="$(TESTFLAGS)" E2E_SKIP_localstack_sqs="$(E2E_SKIP_localstack-sqs)" bash e2e/ci.sh $(E2E_BACKENDS)

## lint: gofmt, go vet in every module, a GOWORK=off build of each module, and actionlint on the GitHub workflow (offline; pinned in .ci/tools/go.mod).
lint:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@set -e; for m in $(MODULES); do \
	  (cd $$m && $(GO) vet ./... && GOWORK=off $(GO) build ./... && GOWORK=off $(GO) vet ./...); \
	done
	@cd .ci/tools && GOWORK=off $(GO) tool actionlint -shellcheck= -pyflakes= ../../.github/workflows/ci.yml
	@echo "lint ok"

## deploy-lint: cfn-lint (pinned, from PyPI, in a venv under localstack/.tools) on the ECS stack.
deploy-lint:
	@bash deploy/lint.sh

## e2e: the race suite alone, long forms included, binaries under test built with -race.
e2e: tools
	cd e2e && WAHOOK_E2E_RACE_BINARIES=1 $(GO) test -race -count=1 -timeout 60m -v $(TESTFLAGS) ./...

## e2e-report: run the fault scenarios (long forms; E2E_REPORT_FLAGS=-short for the CI forms) and rewrite e2e/README.md's fault table from what they read from the backends.
e2e-report: tools
	cd e2e && $(GO) run ./cmd/report -readme README.md $(E2E_REPORT_FLAGS)

## bench: the load benchmark against local emulators, a Markdown report (SOAK=10m adds the soak; BENCHFLAGS="-o results ..." any flags).
bench: tools
	cd e2e && $(GO) run ./cmd/bench $(if $(SOAK),-soak $(SOAK)) $(BENCHFLAGS)

## inspect: `wahook status` against the local stack: ledger states, queue and DLQ depths, dead letters (ROWS=1 prints messages-table rows).
inspect:
	@cd worker && AWS_REGION=$${AWS_REGION:-us-east-1} AWS_ACCESS_KEY_ID=$${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=$${AWS_SECRET_ACCESS_KEY:-test} \
	  AWS_ENDPOINT_URL_DYNAMODB=$${AWS_ENDPOINT_URL_DYNAMODB:-http://127.0.0.1:4567} AWS_ENDPOINT_URL_SQS=$${AWS_ENDPOINT_URL_SQS:-http://127.0.0.1:$(if $(filter localstack,$(WAHOOK_SQS)),4566,9324)} \
	  $(GO) run ./cmd/wahook status $(if $(ROWS),--rows,)

## wahook: run the operator CLI against the local stack, e.g. `make wahook ARGS="dlq list"`.
wahook:
	@cd worker && AWS_REGION=$${AWS_REGION:-us-east-1} AWS_ACCESS_KEY_ID=$${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=$${AWS_SECRET_ACCESS_KEY:-test} \
	  AWS_ENDPOINT_URL_DYNAMODB=$${AWS_ENDPOINT_URL_DYNAMODB:-http://127.0.0.1:4567} AWS_ENDPOINT_URL_SQS=$${AWS_ENDPOINT_URL_SQS:-http://127.0.0.1:$(if $(filter localstack,$(WAHOOK_SQS)),4566,9324)} \
	  $(GO) run ./cmd/wahook $(ARGS)

## fuzz: fuzz the webhook parser for a minute.
fuzz:
	cd shared && $(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=60s ./webhook/

## tools: install the pinned local emulators (dynalite, ElasticMQ, LocalStack's SQS) from the package registries.
tools:
	@bash localstack/install.sh

## build: the binaries into bin/: ingest, worker and the operator CLI wahook.
build:
	@mkdir -p bin
	cd ingest && $(GO) build -o ../bin/ingest ./cmd/ingest
	cd worker && $(GO) build -o ../bin/worker ./cmd/worker
	cd worker && $(GO) build -o ../bin/wahook ./cmd/wahook

clean:
	rm -rf bin localstack/.run
