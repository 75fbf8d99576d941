# Checkstack satellite backend. `make help` lists the targets.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO        ?= go
GOOS      ?= linux
GOARCH    ?= arm64
BUILD_DIR ?= .build
TOOLS_DIR := $(CURDIR)/.tools
TOOLS_BIN := $(TOOLS_DIR)/bin
FUZZTIME  ?= 10s

# Lambda functions: logical id in template.yaml -> package under functions/.
FUNCTIONS := connect message disconnect sweep admin fanout feed

GOBUILD := CGO_ENABLED=0 GOOS=$(GOOS) GOARCH=$(GOARCH) $(GO) build -tags lambda.norpc -trimpath -ldflags='-s -w'

.PHONY: help
help: ## List the targets.
	@grep -hE '^[a-zA-Z_%-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-26s %s\n", $$1, $$2}'

# The example consumer of the results feed (TypeScript, AWS SDK v3): its
# npm packages are pinned by its package-lock.json.
CONSUMER := docs/examples/results-consumer

.PHONY: tools
tools: $(TOOLS_DIR)/dynamodb-local/DynamoDBLocal.jar $(TOOLS_BIN)/aws-lambda-rie $(TOOLS_BIN)/staticcheck $(CONSUMER)/dist/main.js ## Install DynamoDB Local, aws-lambda-rie and staticcheck (pinned) into .tools/, and build the example feed consumer.

$(TOOLS_DIR)/dynamodb-local/DynamoDBLocal.jar:
	infra/scripts/install-dynamodb-local.sh $(TOOLS_DIR)/dynamodb-local

# Tool versions are pinned by the tool directives in go.mod.
$(TOOLS_BIN)/aws-lambda-rie: go.mod
	$(GO) build -o $@ github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie

$(TOOLS_BIN)/staticcheck: go.mod
	$(GO) build -o $@ honnef.co/go/tools/cmd/staticcheck

$(CONSUMER)/dist/main.js: $(CONSUMER)/package-lock.json $(CONSUMER)/tsconfig.json $(wildcard $(CONSUMER)/src/*.ts)
	npm ci --prefix $(CONSUMER) --no-audit --no-fund --silent
	npm run --prefix $(CONSUMER) --silent build

.PHONY: build
build: ## Build every function as $(BUILD_DIR)/<function>/bootstrap (linux/arm64 unless GOARCH is set).
	@for fn in $(FUNCTIONS); do \
	  echo "build $$fn -> $(BUILD_DIR)/$$fn/bootstrap ($(GOOS)/$(GOARCH))"; \
	  $(GOBUILD) -o $(BUILD_DIR)/$$fn/bootstrap ./functions/$$fn; \
	done

# `sam build` runs these (BuildMethod: makefile) with ARTIFACTS_DIR set.
.PHONY: build-ConnectFunction build-MessageFunction build-DisconnectFunction build-SweepFunction build-AdminFunction build-FanoutFunction build-FeedFunction
build-ConnectFunction: ## sam build: ConnectFunction into $(ARTIFACTS_DIR).
	$(GOBUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/connect
build-MessageFunction: ## sam build: MessageFunction into $(ARTIFACTS_DIR).
	$(GOBUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/message
build-DisconnectFunction: ## sam build: DisconnectFunction into $(ARTIFACTS_DIR).
	$(GOBUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/disconnect
build-SweepFunction: ## sam build: SweepFunction into $(ARTIFACTS_DIR).
	$(GOBUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/sweep
build-AdminFunction: ## sam build: AdminFunction into $(ARTIFACTS_DIR).
	$(GOBUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/admin
build-FanoutFunction: ## sam build: FanoutFunction into $(ARTIFACTS_DIR).
	$(GOBUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/fanout
build-FeedFunction: ## sam build: FeedFunction into $(ARTIFACTS_DIR).
	$(GOBUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/feed

DEV_ADDR ?= 127.0.0.1:8765
PERSIST  ?=
DEV_FLAGS ?=

.PHONY: dev
dev: $(TOOLS_DIR)/dynamodb-local/DynamoDBLocal.jar $(TOOLS_BIN)/aws-lambda-rie ## Run the whole backend locally (PERSIST=dir keeps state; DEV_FLAGS="-functions rie" etc.).
	$(GO) build -o $(BUILD_DIR)/devstack ./infra/cmd/devstack
	exec $(BUILD_DIR)/devstack -addr $(DEV_ADDR) $(if $(PERSIST),-persist $(PERSIST)) $(DEV_FLAGS)

.PHONY: test-short
test-short: ## The tests that need no servers (no Java, no built functions, no Node.js): go test -short, about a minute.
	$(GO) test -short -count=1 ./...

.PHONY: test
test: tools ## Install what the tests need, then run every test and a short fuzz of frame parsing.
	$(GO) test -count=1 ./...
	$(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) ./shared/protocol

BENCH_FLAGS ?=

.PHONY: bench
bench: $(TOOLS_DIR)/dynamodb-local/DynamoDBLocal.jar ## Load-test the local stack: messages/s, p50/p90/p99 and peak RSS at 1, 10, 50 connections.
	$(GO) run ./infra/cmd/loadtest $(BENCH_FLAGS)

.PHONY: validate
validate: ## Validate template.yaml with the AWS SAM CLI (sam validate --lint: cfn-lint and the SAM transform).
	@if ! command -v sam >/dev/null 2>&1; then \
	  echo "make validate needs the AWS SAM CLI (not found on PATH)."; \
	  echo "Install it as AWS documents: https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/install-sam-cli.html"; \
	  exit 1; \
	fi
	sam validate --lint --template template.yaml

.PHONY: bench-auth
bench-auth: $(TOOLS_DIR)/dynamodb-local/DynamoDBLocal.jar ## What refusing authentication costs: wrong tokens pipelined on one socket beside a legitimate satellite.
	$(GO) run ./infra/cmd/authbench $(AUTHBENCH_FLAGS)

.PHONY: bench-flood
bench-flood: $(TOOLS_DIR)/dynamodb-local/DynamoDBLocal.jar ## What one client pipelining heartbeats without reading costs the local stack (memory, others' authentication).
	$(GO) run ./infra/cmd/floodbench $(FLOODBENCH_FLAGS)

.PHONY: cost
cost: tools ## The cost model: $/month at 1,000 and 100,000 satellites, on demand and provisioned, from figures the tests measure against DynamoDB Local.
	rm -rf $(BUILD_DIR)/cost
	COST_FIGURES_DIR=$(CURDIR)/$(BUILD_DIR)/cost $(GO) test -count=1 -run '^(TestRequestBudgets|TestHeartbeatCapacityInSteadyState)$$' ./shared/wshandler
	COST_FIGURES_DIR=$(CURDIR)/$(BUILD_DIR)/cost $(GO) test -count=1 -run '^TestSweepReadsGrowWithStaleSatellitesNotTheFleet$$' ./shared/sweep
	$(GO) run ./infra/cmd/costmodel -figures $(BUILD_DIR)/cost $(COST_FLAGS)

.PHONY: bench-sweep
bench-sweep: $(TOOLS_DIR)/dynamodb-local/DynamoDBLocal.jar ## The heartbeat sweep's passes, each with its 15 s budget, over 100,000 satellites in DynamoDB Local, 1,000 of them stale (SWEEPBENCH_FLAGS="-satellites N -stale M -pass-budget D").
	$(GO) run ./infra/cmd/sweepbench $(SWEEPBENCH_FLAGS)

.PHONY: bench-refresh
bench-refresh: $(TOOLS_DIR)/dynamodb-local/DynamoDBLocal.jar ## A package refresh to 10,000 authenticated sockets: publish until every socket has it.
	$(GO) run ./infra/cmd/refreshbench $(REFRESHBENCH_FLAGS)

FEEDBENCH_FLAGS ?=

.PHONY: bench-feed
bench-feed: $(TOOLS_DIR)/dynamodb-local/DynamoDBLocal.jar ## Results feed latency: from a result frame (through the core URL) to the result receivable on the feed queue, p50/p90/p99.
	$(GO) run ./infra/cmd/feedbench $(FEEDBENCH_FLAGS)

TELEMETRYBENCH_FLAGS ?=

.PHONY: bench-telemetry
bench-telemetry: $(TOOLS_DIR)/dynamodb-local/DynamoDBLocal.jar ## Telemetry ack latency: one satellite keeping 4 batches in flight (each an S3 PUT) beside 50 heartbeating ones, p50/p90/p99 and the first acks.
	$(GO) run ./infra/cmd/telemetrybench $(TELEMETRYBENCH_FLAGS)

.PHONY: coldstart
coldstart: $(TOOLS_BIN)/aws-lambda-rie ## Bootstrap sizes (linux/arm64) and init durations under aws-lambda-rie, per function.
	$(GO) run ./infra/cmd/coldstart $(COLDSTART_FLAGS)

.PHONY: lint
lint: $(TOOLS_BIN)/staticcheck ## gofmt, go vet and staticcheck.
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(TOOLS_BIN)/staticcheck ./...

.PHONY: clean
clean: ## Remove build output (keeps installed tools).
	rm -rf $(BUILD_DIR) .aws-sam
