package selector

import (
	"strings"
	"testing"
)

const tcpTable = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 555 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:A000 01 00000000:00000000 00:00000000 00000000     0        0 556 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 557 1 0000000000000000 100 0 0 10 0
   3: garbage
   4: 0100007F:ZZZZ 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 558 1
   5: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 0 1
`

const tcp6Table = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:2382 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
`

func TestParseListeners(t *testing.T) {
	inodes := map[uint64]bool{}
	ports := map[uint16]bool{8080: true, 9090: true}
	if err := parseListeners(strings.NewReader(tcpTable), ports, inodes); err != nil {
		t.Fatal(err)
	}
	if err := parseListeners(strings.NewReader(tcp6Table), ports, inodes); err != nil {
		t.Fatal(err)
	}
	// 555: LISTEN :8080; 556 is ESTABLISHED; 557 is port 80; 0 is no inode.
	if len(inodes) != 2 || !inodes[555] || !inodes[777] {
		t.Errorf("inodes = %v", inodes)
	}
}

func TestSocketInode(t *testing.T) {
	for link, want := range map[string]uint64{"socket:[123]": 123, "socket:[]": 0, "pipe:[5]": 0, "socket:[9": 0, "/dev/null": 0} {
		got, ok := socketInode(link)
		if got != want || ok != (want != 0) {
			t.Errorf("socketInode(%q) = %d, %v", link, got, ok)
		}
	}
}
