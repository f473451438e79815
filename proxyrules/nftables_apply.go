package proxyrules

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// NFTablesApplier loads generated transactions into the kernel with
// `nft -f`, one atomic transaction each, and keeps the generator's state
// in step with what loaded. It touches only the table NFTablesTable.
type NFTablesApplier struct {
	// Exec runs nft; nil means HostExec. To program a network namespace,
	// run it under `ip netns exec NAME`.
	Exec Exec
	// NFTables generates the rules; set its options before the first Apply.
	NFTables NFTables
	// NetNS is the network namespace Exec programs, as a path (such as
	// /run/netns/NAME), or "host" for this process's own. With it, an
	// endpoint change in the NFTablesEndpointMaps layout (elements of the
	// endpoint maps and the hairpin set, and, when the number of
	// endpoints changes, the chain flushed and its one rule added) is
	// sent to the kernel over netlink directly, one batch, without
	// starting nft, which spends about 40 ms reading a table of 10,000
	// Services before it applies anything. Empty: this process's own when
	// Exec is nil (nft runs here too); otherwise every sync goes through
	// nft.
	NetNS string

	started bool
}

// Apply generates the sync for m (full when full is true, on the first
// call, or when the configuration changed) and loads it. On failure the
// kernel keeps the rules it had, nothing is committed, and the error
// quotes the command nft refused. When Apply cannot tell whether the
// kernel took a sync (ctx stopped nft, or netlink went unanswered), the
// next Apply starts over as the first did: it lists the table and writes
// it whole.
func (a *NFTablesApplier) Apply(ctx context.Context, m *Model, full bool) (*NFTablesSync, error) {
	run := a.Exec
	if run == nil {
		run = HostExec
	}
	family := string(nftFamily(m.Config.Family))
	if !a.started {
		chains, sets, err := listTable(ctx, run, family)
		if err != nil {
			return nil, err
		}
		a.NFTables.Adopt(chains, sets)
		full = true
	}
	s := a.NFTables.Sync(m, full)
	if netns, ok := a.netlinkNamespace(); ok && s.netlinkApplicable() {
		if err := s.applyNetlink(netns); err != nil {
			if errors.Is(err, errNetlinkUnknown) {
				a.forget()
			}
			return s, err
		}
		s.Commit()
		return s, nil
	}
	script := s.Script()
	if out, err := run(ctx, script, "nft", "-f", "-"); err != nil {
		if ctx.Err() != nil {
			a.forget() // nft was stopped, perhaps after its commit
		}
		return s, nftError(script, out, err)
	}
	s.Commit()
	a.started = true
	return s, nil
}

// forget drops what the applier knows of the table, so that the next
// Apply lists it and writes it whole, starting its sets and maps afresh.
func (a *NFTablesApplier) forget() {
	a.started = false
	a.NFTables.committed = nil
	a.NFTables.setUp = false
}

// netlinkNamespace is the namespace netlink reaches the table in ("" for
// this process's own), if the applier knows it: NetNS, or this process's
// when nft runs here (a nil Exec).
func (a *NFTablesApplier) netlinkNamespace() (string, bool) {
	switch a.NetNS {
	case "host":
		return "", true
	case "":
		return "", a.Exec == nil
	}
	return a.NetNS, true
}

// listTable returns the chains and sets of the table, if it exists, from
// `nft list chains` and `nft -t list sets` (no rules, no elements: cheap
// even on a large table).
func listTable(ctx context.Context, run Exec, family string) (chains, sets []string, err error) {
	for _, what := range []string{"chains", "sets"} {
		out, err := run(ctx, nil, "nft", "-t", "list", what, family)
		if err != nil {
			return nil, nil, fmt.Errorf("proxyrules: nft list %s %s: %w: %s", what, family, err, bytes.TrimSpace(out))
		}
		table := ""
		for line := range strings.Lines(string(out)) {
			f := strings.Fields(line)
			if len(f) == 4 && f[0] == "table" && f[3] == "{" {
				table = f[2]
			}
			if len(f) != 3 || f[2] != "{" || table != NFTablesTable {
				continue
			}
			switch f[0] {
			case "chain":
				chains = append(chains, f[1])
			case "set":
				sets = append(sets, f[1])
			}
		}
	}
	return chains, sets, nil
}

// nft names the refused command as "/dev/stdin:LINE:FIRST-LAST: Error: ..."
// where FIRST-LAST are the columns of the refused part.
var nftErrorLine = regexp.MustCompile(`(?m)^[^:\n]*:(\d+):(\d+)(?:-(\d+))?: Error: (.*)$`)

// nftError says which command of the script nft refused and, for a long
// command (elements are batched), which part of it.
func nftError(script, out []byte, err error) error {
	msg := strings.TrimSpace(string(out))
	m := nftErrorLine.FindSubmatch(out)
	if m == nil {
		return fmt.Errorf("proxyrules: nft -f: %w: %s", err, msg)
	}
	n, _ := strconv.Atoi(string(m[1]))
	lines := bytes.Split(script, []byte("\n"))
	if n < 1 || n > len(lines) {
		return fmt.Errorf("proxyrules: nft -f: %w: %s", err, msg)
	}
	line := string(lines[n-1])
	if len(line) > 200 {
		first, _ := strconv.Atoi(string(m[2]))
		last, _ := strconv.Atoi(string(m[3]))
		last = max(last, first)
		head, _, _ := strings.Cut(line, "{")
		if first >= 1 && last <= len(line) {
			line = head + "{ ... " + line[first-1:last] + " ... }"
		} else {
			line = line[:200] + "..."
		}
	}
	return fmt.Errorf("proxyrules: nft refused line %d %q: %s: %w", n, line, m[4], err)
}
