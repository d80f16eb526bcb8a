package kafka

// API keys the parser decodes (https://kafka.apache.org/protocol#protocol_api_keys).
const (
	apiProduce                = 0
	apiFetch                  = 1
	apiMetadata               = 3
	apiControlledShutdown     = 7
	apiOffsetCommit           = 8
	apiOffsetFetch            = 9
	apiFindCoordinator        = 10
	apiJoinGroup              = 11
	apiHeartbeat              = 12
	apiLeaveGroup             = 13
	apiSyncGroup              = 14
	apiAPIVersions            = 18
	apiTxnOffsetCommit        = 28
	apiConsumerGroupHeartbeat = 68
)

// apiInfo is what framing needs to know about one API key: the newest
// version a request may plausibly carry (with headroom for releases newer
// than this table) and the first flexible version (-1: never flexible).
type apiInfo struct {
	maxVersion int16
	flexFrom   int16
}

// versionHeadroom tolerates a few versions newer than the table knows, so
// a client upgrade does not make connections undetectable. Unknown newer
// versions are assumed flexible (every API added since KIP-482 is).
const versionHeadroom = 4

// apis is indexed by API key: {newest version, first flexible version},
// as generated from franz-go's kmsg (Kafka 4.x message definitions);
// TestAPITable keeps them in step.
var apis = [...]apiInfo{
	0:  {13, 9},  // Produce
	1:  {18, 12}, // Fetch
	2:  {11, 6},  // ListOffsets
	3:  {13, 9},  // Metadata
	4:  {7, 4},   // LeaderAndISR
	5:  {4, 2},   // StopReplica
	6:  {8, 6},   // UpdateMetadata
	7:  {3, 3},   // ControlledShutdown
	8:  {10, 8},  // OffsetCommit
	9:  {10, 6},  // OffsetFetch
	10: {6, 3},   // FindCoordinator
	11: {9, 6},   // JoinGroup
	12: {4, 4},   // Heartbeat
	13: {5, 4},   // LeaveGroup
	14: {5, 4},   // SyncGroup
	15: {6, 5},   // DescribeGroups
	16: {5, 3},   // ListGroups
	17: {1, -1},  // SASLHandshake
	18: {5, 3},   // ApiVersions
	19: {7, 5},   // CreateTopics
	20: {6, 4},   // DeleteTopics
	21: {2, 2},   // DeleteRecords
	22: {5, 2},   // InitProducerID
	23: {4, 4},   // OffsetForLeaderEpoch
	24: {5, 3},   // AddPartitionsToTxn
	25: {4, 3},   // AddOffsetsToTxn
	26: {5, 3},   // EndTxn
	27: {2, 1},   // WriteTxnMarkers
	28: {6, 3},   // TxnOffsetCommit
	29: {3, 2},   // DescribeACLs
	30: {3, 2},   // CreateACLs
	31: {3, 2},   // DeleteACLs
	32: {4, 4},   // DescribeConfigs
	33: {2, 2},   // AlterConfigs
	34: {2, 2},   // AlterReplicaLogDirs
	35: {5, 2},   // DescribeLogDirs
	36: {2, 2},   // SASLAuthenticate
	37: {3, 2},   // CreatePartitions
	38: {3, 2},   // CreateDelegationToken
	39: {2, 2},   // RenewDelegationToken
	40: {2, 2},   // ExpireDelegationToken
	41: {3, 2},   // DescribeDelegationToken
	42: {3, 2},   // DeleteGroups
	43: {2, 2},   // ElectLeaders
	44: {1, 1},   // IncrementalAlterConfigs
	45: {1, 0},   // AlterPartitionAssignments
	46: {0, 0},   // ListPartitionReassignments
	47: {0, -1},  // OffsetDelete
	48: {1, 1},   // DescribeClientQuotas
	49: {1, 1},   // AlterClientQuotas
	50: {0, 0},   // DescribeUserSCRAMCredentials
	51: {0, 0},   // AlterUserSCRAMCredentials
	52: {2, 0},   // Vote
	53: {1, 1},   // BeginQuorumEpoch
	54: {1, 1},   // EndQuorumEpoch
	55: {2, 0},   // DescribeQuorum
	56: {3, 0},   // AlterPartition
	57: {2, 0},   // UpdateFeatures
	58: {0, 0},   // Envelope
	59: {1, 0},   // FetchSnapshot
	60: {2, 0},   // DescribeCluster
	61: {0, 0},   // DescribeProducers
	62: {4, 0},   // BrokerRegistration
	63: {2, 0},   // BrokerHeartbeat
	64: {0, 0},   // UnregisterBroker
	65: {0, 0},   // DescribeTransactions
	66: {2, 0},   // ListTransactions
	67: {0, 0},   // AllocateProducerIDs
	68: {1, 0},   // ConsumerGroupHeartbeat
	69: {1, 0},   // ConsumerGroupDescribe
	70: {0, 0},   // ControllerRegistration
	71: {0, 0},   // GetTelemetrySubscriptions
	72: {0, 0},   // PushTelemetry
	73: {0, 0},   // AssignReplicasToDirs
	74: {1, 0},   // ListConfigResources
	75: {0, 0},   // DescribeTopicPartitions
	76: {1, 0},   // ShareGroupHeartbeat
	77: {1, 0},   // ShareGroupDescribe
	78: {2, 0},   // ShareFetch
	79: {2, 0},   // ShareAcknowledge
	80: {1, 0},   // AddRaftVoter
	81: {0, 0},   // RemoveRaftVoter
	82: {0, 0},   // UpdateRaftVoter
	83: {0, 0},   // InitializeShareGroupState
	84: {0, 0},   // ReadShareGroupState
	85: {1, 0},   // WriteShareGroupState
	86: {0, 0},   // DeleteShareGroupState
	87: {1, 0},   // ReadShareGroupStateSummary
	88: {1, 0},   // StreamsGroupHeartbeat
	89: {1, 0},   // StreamsGroupDescribe
	90: {1, 0},   // DescribeShareGroupOffsets
	91: {0, 0},   // AlterShareGroupOffsets
	92: {0, 0},   // DeleteShareGroupOffsets
	93: {0, 0},   // StreamsGroupTopologyDescriptionUpdate
	94: {0, 0},   // UnregisterController
}

// maxAPIKey bounds keys newer than the table, assumed flexible from v0
// like every API added since KIP-482.
const maxAPIKey = 100

func apiLookup(key int16) (apiInfo, bool) {
	switch {
	case key < 0 || key > maxAPIKey:
		return apiInfo{}, false
	case int(key) < len(apis):
		return apis[key], true
	default:
		return apiInfo{maxVersion: 8, flexFrom: 0}, true
	}
}

// validVersion reports whether a request may carry this key and version.
func validVersion(key, version int16) bool {
	a, ok := apiLookup(key)
	return ok && version >= 0 && version <= a.maxVersion+versionHeadroom
}

// flexible reports whether key/version uses flexible (KIP-482) encoding.
func flexible(key, version int16) bool {
	a, ok := apiLookup(key)
	if !ok || a.flexFrom < 0 {
		return false
	}
	return version >= a.flexFrom
}

// requestHeaderVersion: v0 (ControlledShutdown v0 only), v1, or v2 (flexible).
func requestHeaderVersion(key, version int16) int {
	switch {
	case key == apiControlledShutdown && version == 0:
		return 0
	case flexible(key, version):
		return 2
	}
	return 1
}

// responseHeaderFlexible: ApiVersions responses always use header v0, so a
// client can parse them before knowing what the broker supports.
func responseHeaderFlexible(key, version int16) bool {
	return key != apiAPIVersions && flexible(key, version)
}
