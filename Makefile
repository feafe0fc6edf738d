# Herald: `make run` starts a node on the embedded default; `make test` runs
# the whole suite, installing redis-server and nginx when missing.
GO ?= go
GOFLAGS_TEST ?= -race -count=1 -timeout 30m

.PHONY: run test test-deps vet fmt-check bench cluster cluster-redis-cluster build fuzz

run:
	$(GO) run ./server/cmd/herald serve

build:
	$(GO) build -o bin/herald ./server/cmd/herald

test: test-deps fmt-check vet
	$(GO) test $(GOFLAGS_TEST) ./...

test-deps:
	@./scripts/install-test-deps.sh

vet:
	$(GO) vet ./...

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./hub/ ./pkg/...

# Redis + two Herald nodes + nginx as local processes (the docker-compose
# topology without Docker). Ctrl-C stops everything.
cluster: build
	./scripts/cluster.sh

# The same with a local 6-process Redis Cluster (3 primaries, 3 replicas)
# instead of one Redis.
cluster-redis-cluster: build
	CLUSTER=redis-cluster ./scripts/cluster.sh

# Runs every fuzz target for FUZZTIME each (the seed corpora run in `make test`).
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for fn in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$fn"; \
	    $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done
