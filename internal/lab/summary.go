package lab

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteOverlay prints one line per node: its role, what it is attached
// to, its capacity and its addresses.
func WriteOverlay(w io.Writer, l *Lab, o Overlay) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  NODE\tROLE\tSUPERNODE / LEAVES\tCPUS\tUPLOAD CAP\tFILES\tAPI\tPEER ID")
	byID := map[string]string{}
	for _, p := range l.Nodes() {
		byID[p.Ready.PeerID.String()] = p.Name
	}
	for _, p := range l.Nodes() {
		role, link, files := "-", "-", "-"
		switch st, ok := o.Status[p.Name]; {
		case !p.Alive():
			role = "exited"
		case p.Frozen():
			role = "cut"
		case !ok:
			role = "no answer"
		case st.IsSupernode():
			role = "supernode"
			link = fmt.Sprintf("%d leaves, %d neighbours", len(st.Supernode.Leaves), len(st.Supernode.Neighbours))
			files = fmt.Sprint(st.Shares.Files)
		default:
			role, files = "leaf", fmt.Sprint(st.Shares.Files)
			if st.Attached != nil {
				link = "-> " + nameOr(byID, st.Attached.Supernode.ID.String())
				if !o.attached(st) {
					link += " (down)"
				}
			} else {
				link = "(joining)"
			}
		}
		up := p.Profile.Upload
		if up == "" {
			up = "none"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", p.Name, role, link, p.Profile.CPUs, up, files, p.Ready.API, short(p.Ready.PeerID.String()))
	}
	_ = tw.Flush()
}

func nameOr(names map[string]string, id string) string {
	if n, ok := names[id]; ok {
		return n
	}
	return short(id)
}

// short cuts a peer ID for a table.
func short(id string) string {
	if len(id) > 12 {
		return id[:12] + "…"
	}
	return id
}

// Examples are commands to try against a running lab: prog is how to run
// strata (e.g. "strata" or "go run ./cmd/strata").
func Examples(prog string, l *Lab, o Overlay) []string {
	var ex []string
	sns, leaves := o.Supernodes(), o.Leaves()
	if len(sns) > 0 {
		p, _ := l.Node(sns[0])
		ex = append(ex, fmt.Sprintf("%s status --api %s            # %s: a supernode, its leaves and index", prog, p.Ready.API, p.Name))
	}
	if len(leaves) > 0 {
		p, _ := l.Node(leaves[len(leaves)-1])
		ex = append(ex,
			fmt.Sprintf("%s search --api %s beatles    # search from %s, a leaf", prog, p.Ready.API, p.Name),
			fmt.Sprintf("%s search --api %s --get 1 beatles   # and download hit 1", prog, p.Ready.API),
			fmt.Sprintf("%s downloads --api %s", prog, p.Ready.API))
	}
	ex = append(ex, fmt.Sprintf("%s status --api %s            # the bootstrap server: supernodes and load", prog, l.Bootstrap.Ready.API))
	return ex
}
