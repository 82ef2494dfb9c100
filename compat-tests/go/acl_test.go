package compat

// ACLs: Klamm's authorizer (`--authorizer`, `--super-users`, Kafka's StandardAuthorizer rules)
// through franz-go (kadm's ACLBuilder; kgo producers, group consumers and a transactional
// producer as SASL users) and sarama (ClusterAdmin's ACL calls; a refused SyncProducer).
// Run alone with `go test -run TestAcl`.
//
// The broker has a PLAINTEXT listener (User:ANONYMOUS, no ACLs: it can do nothing) and a
// SASL_PLAINTEXT one with the users admin (the super user), alice and bob; every client here
// logs in over SASL (admin with SCRAM-SHA-512, alice with SCRAM-SHA-256, bob with PLAIN).
// Klamm applies ACLs before it answers CreateAcls/DeleteAcls, so a client is checked right
// after; every refusal is the client's own error, waited for with a bound, never concluded
// from a sleep.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

const (
	aclAdminPw = "admin-pw"
	aclAlicePw = "alice-pw"
	aclBobPw   = "bob-pw"
)

// aclBroker is a broker with PLAINTEXT (first: Addr) and SASL_PLAINTEXT listeners.
type aclBroker struct {
	*Broker
	sasl string
}

// startAclBroker starts a broker with the two listeners and the users admin, alice and bob;
// extra are more flags (--authorizer ...).
func startAclBroker(t *testing.T, extra ...string) *aclBroker {
	t.Helper()
	if useKafka() {
		t.Skip("COMPAT_BROKER=kafka: the ACL and listener flags are not mapped to Kafka here")
	}
	plaintext := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	saslAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	flags := append([]string{
		"--listeners", "PLAINTEXT://" + plaintext + ",SASL_PLAINTEXT://" + saslAddr,
		"--bootstrap-users", "admin:" + aclAdminPw + ",alice:" + aclAlicePw + ",bob:" + aclBobPw,
	}, groupFlags...)
	b := startBroker(t, append(flags, extra...)...)
	if b.Addr() != plaintext {
		t.Fatalf("broker address %s, want the PLAINTEXT listener %s", b.Addr(), plaintext)
	}
	return &aclBroker{Broker: b, sasl: saslAddr}
}

var aclAuthorizerFlags = []string{"--authorizer", "--super-users", "User:admin"}

func aclAdminMech() sasl.Mechanism { return franzSCRAM("admin", aclAdminPw, true) }
func aclAliceMech() sasl.Mechanism { return franzSCRAM("alice", aclAlicePw, false) }
func aclBobMech() sasl.Mechanism   { return plain.Auth{User: "bob", Pass: aclBobPw}.AsMechanism() }

// franzAs is a kgo client logged in over SASL_PLAINTEXT with mech.
func (b *aclBroker) franzAs(t *testing.T, mech sasl.Mechanism, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return kgoClient(t, b.Broker, append([]kgo.Opt{kgo.SeedBrokers(b.sasl), kgo.SASL(mech)}, opts...)...)
}

// aclBinding is one ACL binding as a client sees it.
type aclBinding struct {
	Principal, Host string
	Type            kmsg.ACLResourceType
	Name            string
	Pattern         kmsg.ACLResourcePatternType
	Op              kmsg.ACLOperation
	Perm            kmsg.ACLPermissionType
}

func (a aclBinding) String() string {
	return fmt.Sprintf("(%s %s %s %s %s %s@%s)", a.Type, a.Pattern, a.Name, a.Perm, a.Op, a.Principal, a.Host)
}

func sortBindings(bs []aclBinding) []aclBinding {
	sort.Slice(bs, func(i, j int) bool { return bs[i].String() < bs[j].String() })
	return bs
}

func assertBindings(t *testing.T, what string, want, got []aclBinding) {
	t.Helper()
	w, g := fmt.Sprint(sortBindings(append([]aclBinding{}, want...))), fmt.Sprint(sortBindings(append([]aclBinding{}, got...)))
	if w != g {
		t.Fatalf("%s:\n got  %s\n want %s", what, g, w)
	}
}

func topicACL(principal, name string, pattern kmsg.ACLResourcePatternType, op kmsg.ACLOperation, perm kmsg.ACLPermissionType) aclBinding {
	return aclBinding{principal, "*", kmsg.ACLResourceTypeTopic, name, pattern, op, perm}
}

const (
	lit   = kadm.ACLPatternLiteral
	pfx   = kadm.ACLPatternPrefixed
	allow = kmsg.ACLPermissionTypeAllow
	deny  = kmsg.ACLPermissionTypeDeny
)

// createACLs creates the builder's ACLs and requires every creation to succeed; it returns
// the bindings kadm sent.
func createACLs(t *testing.T, adm *kadm.Client, b *kadm.ACLBuilder) []aclBinding {
	t.Helper()
	res, err := adm.CreateACLs(testCtx(t, 15*time.Second), b)
	if err != nil {
		t.Fatalf("CreateACLs: %v", err)
	}
	var out []aclBinding
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("CreateACLs %s %s %s: %v (%s)", r.Name, r.Operation, r.Principal, r.Err, r.ErrMessage)
		}
		out = append(out, aclBinding{r.Principal, r.Host, r.Type, r.Name, r.Pattern, r.Operation, r.Permission})
	}
	return out
}

// describeACLs runs the builder's filters and returns every binding they matched.
func describeACLs(t *testing.T, adm *kadm.Client, b *kadm.ACLBuilder) []aclBinding {
	t.Helper()
	res, err := adm.DescribeACLs(testCtx(t, 15*time.Second), b)
	if err != nil {
		t.Fatalf("DescribeACLs: %v", err)
	}
	var out []aclBinding
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("DescribeACLs: %v (%s)", r.Err, r.ErrMessage)
		}
		for _, d := range r.Described {
			out = append(out, aclBinding{d.Principal, d.Host, d.Type, d.Name, d.Pattern, d.Operation, d.Permission})
		}
	}
	return out
}

// deleteACLs deletes by the builder's filters and returns every binding they deleted.
func deleteACLs(t *testing.T, adm *kadm.Client, b *kadm.ACLBuilder) []aclBinding {
	t.Helper()
	res, err := adm.DeleteACLs(testCtx(t, 15*time.Second), b)
	if err != nil {
		t.Fatalf("DeleteACLs: %v", err)
	}
	var out []aclBinding
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("DeleteACLs: %v (%s)", r.Err, r.ErrMessage)
		}
		for _, d := range r.Deleted {
			if d.Err != nil {
				t.Fatalf("DeleteACLs %s: %v (%s)", d.Name, d.Err, d.ErrMessage)
			}
			out = append(out, aclBinding{d.Principal, d.Host, d.Type, d.Name, d.Pattern, d.Operation, d.Permission})
		}
	}
	return out
}

// allACLs: every binding (resource, pattern, principal, host, operation and permission ANY).
func allACLs(t *testing.T, adm *kadm.Client) []aclBinding {
	t.Helper()
	return describeACLs(t, adm, kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).
		Allow().AllowHosts().Deny().DenyHosts().Operations())
}

// aclCreateTopic creates a one-partition topic as the super user.
func aclCreateTopic(t *testing.T, adm *kadm.Client, topic string) {
	t.Helper()
	resp, err := adm.CreateTopic(testCtx(t, 15*time.Second), 1, 1, nil, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("create topic %s as admin: %v / %v", topic, err, resp.Err)
	}
}

// produceErr produces one record and returns the client's error for it (bounded).
func produceErr(t *testing.T, cl *kgo.Client, topic string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr()
	if ctx.Err() != nil {
		t.Fatalf("produce to %s: no answer within 15 s (%v)", topic, err)
	}
	return err
}

func wantKerr(t *testing.T, what string, err error, want *kerr.Error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want %s", what, err, want.Message)
	}
}

// TestAclFranz: kadm ACL administration by the super user (LITERAL, PREFIXED, ANY and MATCH
// filters), alice allowed and bob refused on a topic and a group, a DENY beating a prefixed
// ALLOW, a transactional id, a non-admin's ACL requests, and SECURITY_DISABLED without
// --authorizer.
func TestAclFranz(t *testing.T) {
	b := startAclBroker(t, aclAuthorizerFlags...)
	adm := kadm.NewClient(b.franzAs(t, aclAdminMech()))
	topic, other, group := topicName(t, "t"), topicName(t, "other"), topicName(t, "g")
	prefix := topicName(t, "pfx") + "-"
	txnPrefix := topicName(t, "txn") + "-"
	aclCreateTopic(t, adm, topic)
	aclCreateTopic(t, adm, other)

	// The bindings the later subtests rely on.
	aliceTopic := []aclBinding{
		topicACL("User:alice", topic, lit, kadm.OpRead, allow),
		topicACL("User:alice", topic, lit, kadm.OpWrite, allow),
	}
	aliceGroup := aclBinding{"User:alice", "*", kmsg.ACLResourceTypeGroup, group, lit, kadm.OpRead, allow}
	// bob may read the topic (so franz-go's group member, which joins only once the topic's
	// metadata is in, tries to join) but has no ACL on the group.
	bobRead := topicACL("User:bob", topic, lit, kadm.OpRead, allow)
	everyoneWrite := topicACL("User:*", prefix, pfx, kadm.OpWrite, allow)
	bobDeny := topicACL("User:bob", prefix+"secret", lit, kadm.OpWrite, deny)
	aliceTxn := aclBinding{"User:alice", "*", kmsg.ACLResourceTypeTransactionalId, txnPrefix, pfx, kadm.OpWrite, allow}

	t.Run("admin_create_describe_delete", func(t *testing.T) {
		if got := allACLs(t, adm); len(got) != 0 {
			t.Fatalf("a new broker has ACLs: %v", got)
		}
		created := createACLs(t, adm, kadm.NewACLs().Topics(topic).ResourcePatternType(lit).
			Allow("User:alice").Operations(kadm.OpRead, kadm.OpWrite))
		assertBindings(t, "created (host defaults to *)", aliceTopic, created)
		createACLs(t, adm, kadm.NewACLs().Groups(group).Allow("User:alice").Operations(kadm.OpRead))
		createACLs(t, adm, kadm.NewACLs().Topics(topic).Allow("User:bob").Operations(kadm.OpRead))
		createACLs(t, adm, kadm.NewACLs().Topics(prefix).ResourcePatternType(pfx).Allow("User:*").Operations(kadm.OpWrite))
		createACLs(t, adm, kadm.NewACLs().Topics(prefix+"secret").ResourcePatternType(lit).Deny("User:bob").Operations(kadm.OpWrite))
		// Creating an existing binding again is no error and adds nothing.
		createACLs(t, adm, kadm.NewACLs().Groups(group).Allow("User:alice").Operations(kadm.OpRead))
		core := append(append([]aclBinding{}, aliceTopic...), aliceGroup, bobRead, everyoneWrite, bobDeny)
		assertBindings(t, "every binding", core, allACLs(t, adm))

		// LITERAL filter on one topic, any principal/host/operation/permission.
		assertBindings(t, "LITERAL topic filter", append(append([]aclBinding{}, aliceTopic...), bobRead), describeACLs(t, adm,
			kadm.NewACLs().Topics(topic).ResourcePatternType(lit).Allow().AllowHosts().Deny().DenyHosts().Operations()))
		// ... and one operation of it.
		assertBindings(t, "LITERAL topic + WRITE", aliceTopic[1:], describeACLs(t, adm,
			kadm.NewACLs().Topics(topic).ResourcePatternType(lit).Allow().AllowHosts().Deny().DenyHosts().Operations(kadm.OpWrite)))
		// PREFIXED filter: only the prefixed binding named exactly so (not the literal under it).
		assertBindings(t, "PREFIXED filter", []aclBinding{everyoneWrite}, describeACLs(t, adm,
			kadm.NewACLs().Topics(prefix).ResourcePatternType(pfx).Allow().AllowHosts().Deny().DenyHosts().Operations()))
		// MATCH: every binding that applies to the name (the literal one and the prefix).
		assertBindings(t, "MATCH filter", []aclBinding{everyoneWrite, bobDeny}, describeACLs(t, adm,
			kadm.NewACLs().Topics(prefix+"secret").ResourcePatternType(kadm.ACLPatternMatch).Allow().AllowHosts().Deny().DenyHosts().Operations()))
		// ANY pattern, by principal and permission.
		assertBindings(t, "ANY filter, DENY User:bob", []aclBinding{bobDeny}, describeACLs(t, adm,
			kadm.NewACLs().Topics().ResourcePatternType(kadm.ACLPatternAny).Deny("User:bob").DenyHosts().Operations()))
		assertBindings(t, "ANY filter, ALLOW User:alice, any resource", append(append([]aclBinding{}, aliceTopic...), aliceGroup),
			describeACLs(t, adm, kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Allow("User:alice").AllowHosts().Operations()))
		assertBindings(t, "ANY filter, User:bob, ALLOW and DENY", []aclBinding{bobRead, bobDeny}, describeACLs(t, adm,
			kadm.NewACLs().Topics().ResourcePatternType(kadm.ACLPatternAny).Allow("User:bob").AllowHosts().Deny("User:bob").DenyHosts().Operations()))
		assertBindings(t, "group READ", []aclBinding{aliceGroup}, describeACLs(t, adm,
			kadm.NewACLs().Groups().ResourcePatternType(kadm.ACLPatternAny).Allow().AllowHosts().Deny().DenyHosts().Operations(kadm.OpRead)))
		assertBindings(t, "a host no binding has", nil, describeACLs(t, adm,
			kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Allow().AllowHosts("10.1.2.3").Operations()))

		// Delete by filter, on scratch bindings.
		scratch := topicName(t, "scratch")
		createACLs(t, adm, kadm.NewACLs().Topics(scratch+"x").Allow("User:bob").Operations(kadm.OpDescribe))
		createACLs(t, adm, kadm.NewACLs().Topics(scratch).ResourcePatternType(pfx).Allow("User:bob").Operations(kadm.OpDescribe))
		createACLs(t, adm, kadm.NewACLs().Topics(scratch+"y").Allow("User:alice").AllowHosts("127.0.0.1").Operations(kadm.OpRead))
		matchX := kadm.NewACLs().Topics(scratch + "x").ResourcePatternType(kadm.ACLPatternMatch).Allow().AllowHosts().Deny().DenyHosts().Operations()
		assertBindings(t, "deleted by a MATCH filter", []aclBinding{
			topicACL("User:bob", scratch+"x", lit, kadm.OpDescribe, allow),
			topicACL("User:bob", scratch, pfx, kadm.OpDescribe, allow),
		}, deleteACLs(t, adm, matchX))
		assertBindings(t, "the MATCH filter after the delete", nil, describeACLs(t, adm, matchX))
		y := aclBinding{"User:alice", "127.0.0.1", kmsg.ACLResourceTypeTopic, scratch + "y", lit, kadm.OpRead, allow}
		assertBindings(t, "a filter on another host deletes nothing", nil, deleteACLs(t, adm,
			kadm.NewACLs().Topics(scratch+"y").Allow("User:alice").AllowHosts("*").Operations()))
		assertBindings(t, "deleted by a LITERAL filter with the host", []aclBinding{y}, deleteACLs(t, adm,
			kadm.NewACLs().Topics(scratch+"y").Allow("User:alice").AllowHosts("127.0.0.1").Operations(kadm.OpRead)))
		assertBindings(t, "every binding after the deletes", core, allACLs(t, adm))
	})

	t.Run("alice_allowed_bob_refused", func(t *testing.T) {
		// Metadata lists only the topics alice may describe (READ/WRITE imply DESCRIBE).
		aliceAdm := kadm.NewClient(b.franzAs(t, aclAliceMech()))
		listed, err := aliceAdm.ListTopics(testCtx(t, 15*time.Second))
		if err != nil {
			t.Fatalf("alice ListTopics: %v", err)
		}
		if names := listed.Names(); len(names) != 1 || names[0] != topic {
			t.Fatalf("alice lists %v, want only [%s]", names, topic)
		}

		// alice (idempotent producer: WRITE on a topic is enough for InitProducerId) produces,
		// then consumes in the group and commits.
		rs := secSample(topic, "acl", true)
		prod := b.franzAs(t, aclAliceMech(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		assertRecs(t, "alice produced", rs, kgoProduce(t, prod, rs))
		m := newGroupMember(t, b.Broker, "alice", group, topic, false, kgo.SeedBrokers(b.sasl), kgo.SASL(aclAliceMech()))
		got := pollGroup(t, len(rs), 20*time.Second, m)["alice"]
		sortRecs(got)
		assertRecs(t, "alice consumed in the group", rs, got)
		if err := m.cl.CommitUncommittedOffsets(testCtx(t, 15*time.Second)); err != nil {
			t.Fatalf("alice commit: %v", err)
		}
		m.close()
		offs, err := adm.FetchOffsets(testCtx(t, 15*time.Second), group)
		if err != nil {
			t.Fatalf("FetchOffsets: %v", err)
		}
		if o, ok := offs.Lookup(topic, 0); !ok || o.Err != nil || o.At != int64(len(rs)) {
			t.Fatalf("group %s committed %+v (found %v), want %d", group, o, ok, len(rs))
		}

		// bob may READ (so DESCRIBE) the topic, not WRITE it: Produce refuses the record. (Its
		// idempotent producer gets a producer id: User:* may WRITE the prefixed topics.)
		bobProd := b.franzAs(t, aclBobMech())
		wantKerr(t, "bob produces", produceErr(t, bobProd, topic), kerr.TopicAuthorizationFailed)

		// bob joins the group: refused (FindCoordinator needs DESCRIBE, JoinGroup READ on it).
		// The client reports it through PollFetches.
		bobCons := b.franzAs(t, aclBobMech(), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		ctx := testCtx(t, 20*time.Second)
		var seen []error
		for found := false; !found; {
			fs := bobCons.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("bob's group member: no GROUP_AUTHORIZATION_FAILED within 20 s; errors %v", seen)
			}
			if n := fs.NumRecords(); n > 0 {
				t.Fatalf("bob consumed %d records", n)
			}
			for _, fe := range fs.Errors() {
				seen = append(seen, fe.Err)
				if !errors.Is(fe.Err, kerr.GroupAuthorizationFailed) {
					t.Fatalf("bob's group member: error %s/%d: %v, want GROUP_AUTHORIZATION_FAILED", fe.Topic, fe.Partition, fe.Err)
				}
				found = true
			}
		}
		t.Logf("bob's group member got %v", seen)
		// The group's commit is untouched.
		offs, err = adm.FetchOffsets(testCtx(t, 15*time.Second), group)
		if err != nil {
			t.Fatalf("FetchOffsets: %v", err)
		}
		if o, _ := offs.Lookup(topic, 0); o.At != int64(len(rs)) {
			t.Fatalf("group %s committed %+v after bob, want %d", group, o, len(rs))
		}
	})

	t.Run("deny_beats_prefixed_allow", func(t *testing.T) {
		open, secret := prefix+"open", prefix+"secret"
		aclCreateTopic(t, adm, open)
		aclCreateTopic(t, adm, secret)
		// User:* may WRITE (so DESCRIBE) every topic under the prefix; bob is denied WRITE
		// on one of them, which DESCRIBE does not follow.
		bobProd := b.franzAs(t, aclBobMech())
		if err := produceErr(t, bobProd, open); err != nil {
			t.Fatalf("bob produces to %s (prefixed ALLOW User:*): %v", open, err)
		}
		wantKerr(t, "bob produces to "+secret+" (DENY)", produceErr(t, bobProd, secret), kerr.TopicAuthorizationFailed)
		aliceProd := b.franzAs(t, aclAliceMech())
		if err := produceErr(t, aliceProd, secret); err != nil {
			t.Fatalf("alice produces to %s (the DENY is bob's): %v", secret, err)
		}
		ends, err := adm.ListEndOffsets(testCtx(t, 15*time.Second), open, secret)
		if err != nil {
			t.Fatalf("ListEndOffsets: %v", err)
		}
		for tp, want := range map[string]int64{open: 1, secret: 1} {
			if o, ok := ends.Lookup(tp, 0); !ok || o.Err != nil || o.Offset != want {
				t.Fatalf("%s end offset %+v, want %d", tp, o, want)
			}
		}
	})

	t.Run("transactional_id", func(t *testing.T) {
		// alice may WRITE the topic but not the transactional id. franz-go initializes the
		// producer id (FindCoordinator, InitProducerId) in BeginTransaction.
		refused := b.franzAs(t, aclAliceMech(), kgo.TransactionalID(txnPrefix+"a"))
		err := refused.BeginTransaction()
		if err == nil { // a client that initializes it later fails the record instead
			err = produceErr(t, refused, topic)
		}
		wantKerr(t, "transactions without WRITE on the transactional id", err, kerr.TransactionalIDAuthorizationFailed)
		refused.Close()

		assertBindings(t, "created", []aclBinding{aliceTxn}, createACLs(t, adm, kadm.NewACLs().TransactionalIDs(txnPrefix).
			ResourcePatternType(pfx).Allow("User:alice").Operations(kadm.OpWrite)))
		ok := b.franzAs(t, aclAliceMech(), kgo.TransactionalID(txnPrefix+"b"))
		ctx := testCtx(t, 20*time.Second)
		if err := ok.BeginTransaction(); err != nil {
			t.Fatalf("BeginTransaction: %v", err)
		}
		if err := produceErr(t, ok, topic); err != nil {
			t.Fatalf("transactional produce with WRITE on the id: %v", err)
		}
		if err := ok.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatalf("commit: %v", err)
		}
	})

	t.Run("not_admin", func(t *testing.T) {
		before := allACLs(t, adm)
		aliceAdm := kadm.NewClient(b.franzAs(t, aclAliceMech()))
		ctx := testCtx(t, 15*time.Second)
		cres, err := aliceAdm.CreateACLs(ctx, kadm.NewACLs().Topics(other).Allow("User:alice").Operations(kadm.OpRead, kadm.OpWrite))
		if err != nil || len(cres) != 2 {
			t.Fatalf("alice CreateACLs: %v (%d results)", err, len(cres))
		}
		for _, r := range cres {
			wantKerr(t, "alice CreateACLs", r.Err, kerr.ClusterAuthorizationFailed)
		}
		dres, err := aliceAdm.DescribeACLs(ctx, kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).
			Allow().AllowHosts().Deny().DenyHosts().Operations())
		if err != nil || len(dres) != 1 {
			t.Fatalf("alice DescribeACLs: %v (%d results)", err, len(dres))
		}
		wantKerr(t, "alice DescribeACLs", dres[0].Err, kerr.ClusterAuthorizationFailed)
		if len(dres[0].Described) != 0 {
			t.Fatalf("alice DescribeACLs described %d bindings", len(dres[0].Described))
		}
		xres, err := aliceAdm.DeleteACLs(ctx, kadm.NewACLs().Topics(topic).Allow().AllowHosts().Deny().DenyHosts().Operations())
		if err != nil || len(xres) != 1 {
			t.Fatalf("alice DeleteACLs: %v (%d results)", err, len(xres))
		}
		wantKerr(t, "alice DeleteACLs", xres[0].Err, kerr.ClusterAuthorizationFailed)
		assertBindings(t, "every binding after alice's requests", before, allACLs(t, adm))
	})

	t.Run("delete_by_filter", func(t *testing.T) {
		// Every binding of User:alice, whatever the resource and pattern.
		deleted := deleteACLs(t, adm, kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).
			Allow("User:alice").AllowHosts().Operations())
		assertBindings(t, "alice's bindings deleted", append(append([]aclBinding{}, aliceTopic...), aliceGroup, aliceTxn), deleted)
		assertBindings(t, "every binding left", []aclBinding{bobRead, everyoneWrite, bobDeny}, allACLs(t, adm))
		// alice is now refused the topic (no DESCRIBE: its metadata is refused).
		aliceProd := b.franzAs(t, aclAliceMech(), kgo.DisableIdempotentWrite())
		wantKerr(t, "alice produces after the delete", produceErr(t, aliceProd, topic), kerr.TopicAuthorizationFailed)
	})

	t.Run("security_disabled", func(t *testing.T) {
		plainB := startAclBroker(t) // no --authorizer
		padm := kadm.NewClient(plainB.franzAs(t, aclAdminMech()))
		ctx := testCtx(t, 15*time.Second)
		cres, err := padm.CreateACLs(ctx, kadm.NewACLs().Topics(topic).Allow("User:alice").Operations(kadm.OpRead))
		if err != nil || len(cres) != 1 {
			t.Fatalf("CreateACLs: %v (%d results)", err, len(cres))
		}
		wantKerr(t, "CreateACLs without --authorizer", cres[0].Err, kerr.SecurityDisabled)
		dres, err := padm.DescribeACLs(ctx, kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).
			Allow().AllowHosts().Deny().DenyHosts().Operations())
		if err != nil || len(dres) != 1 {
			t.Fatalf("DescribeACLs: %v (%d results)", err, len(dres))
		}
		wantKerr(t, "DescribeACLs without --authorizer", dres[0].Err, kerr.SecurityDisabled)
		xres, err := padm.DeleteACLs(ctx, kadm.NewACLs().Topics(topic).Allow().AllowHosts().Deny().DenyHosts().Operations())
		if err != nil || len(xres) != 1 {
			t.Fatalf("DeleteACLs: %v (%d results)", err, len(xres))
		}
		wantKerr(t, "DeleteACLs without --authorizer", xres[0].Err, kerr.SecurityDisabled)
	})
}

// ---------------------------------------------------------------- sarama

type saramaBinding struct {
	sarama.Resource
	sarama.Acl
}

func (s saramaBinding) String() string {
	// the enums' String methods have pointer receivers
	return fmt.Sprintf("(%s %s %s %s %s %s@%s)", &s.ResourceType, &s.ResourcePatternType, s.ResourceName,
		&s.PermissionType, &s.Operation, s.Principal, s.Host)
}

func assertSaramaBindings(t *testing.T, what string, want, got []saramaBinding) {
	t.Helper()
	str := func(bs []saramaBinding) string {
		ss := make([]string, len(bs))
		for i, b := range bs {
			ss[i] = b.String()
		}
		sort.Strings(ss)
		return strings.Join(ss, " ")
	}
	if w, g := str(want), str(got); w != g {
		t.Fatalf("%s:\n got  %s\n want %s", what, g, w)
	}
}

func flattenSarama(rs []sarama.ResourceAcls) []saramaBinding {
	var out []saramaBinding
	for _, r := range rs {
		for _, a := range r.Acls {
			out = append(out, saramaBinding{r.Resource, *a})
		}
	}
	return out
}

// TestAclSarama: sarama's ClusterAdmin creates, lists (LITERAL, PREFIXED, MATCH, ANY) and
// deletes ACLs as the super user, is refused as alice; a SyncProducer as bob is refused with
// ErrTopicAuthorizationFailed (by Produce, then by Metadata), alice's succeeds.
func TestAclSarama(t *testing.T) {
	b := startAclBroker(t, aclAuthorizerFlags...)
	cfgAs := func(mechanism, user, pw string) *sarama.Config {
		return saramaSecConfig(nil, mechanism, user, pw)
	}
	admin, err := sarama.NewClusterAdmin([]string{b.sasl}, cfgAs(sarama.SASLTypeSCRAMSHA512, "admin", aclAdminPw))
	if err != nil {
		t.Fatalf("NewClusterAdmin as admin: %v", err)
	}
	defer admin.Close()
	topic, groupPrefix := topicName(t, "t"), topicName(t, "g")+"-"
	group := groupPrefix + "members"
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err != nil {
		t.Fatalf("CreateTopic as admin: %v", err)
	}

	res := func(typ sarama.AclResourceType, name string, pat sarama.AclResourcePatternType) sarama.Resource {
		return sarama.Resource{ResourceType: typ, ResourceName: name, ResourcePatternType: pat}
	}
	acl := func(principal string, op sarama.AclOperation, perm sarama.AclPermissionType) sarama.Acl {
		return sarama.Acl{Principal: principal, Host: "*", Operation: op, PermissionType: perm}
	}
	topicRes := res(sarama.AclResourceTopic, topic, sarama.AclPatternLiteral)
	groupRes := res(sarama.AclResourceGroup, groupPrefix, sarama.AclPatternPrefixed)
	bobDescribe := saramaBinding{topicRes, acl("User:bob", sarama.AclOperationDescribe, sarama.AclPermissionAllow)}
	aliceWrite := saramaBinding{topicRes, acl("User:alice", sarama.AclOperationWrite, sarama.AclPermissionAllow)}
	aliceGroup := saramaBinding{groupRes, acl("User:alice", sarama.AclOperationRead, sarama.AclPermissionAllow)}
	bobGroupDeny := saramaBinding{groupRes, acl("User:bob", sarama.AclOperationAll, sarama.AclPermissionDeny)}
	if err := admin.CreateACLs([]*sarama.ResourceAcls{
		{Resource: topicRes, Acls: []*sarama.Acl{&bobDescribe.Acl, &aliceWrite.Acl}},
		{Resource: groupRes, Acls: []*sarama.Acl{&aliceGroup.Acl, &bobGroupDeny.Acl}},
	}); err != nil {
		t.Fatalf("CreateACLs as admin: %v", err)
	}

	list := func(what string, f sarama.AclFilter, want ...saramaBinding) {
		t.Helper()
		rs, err := admin.ListAcls(f)
		if err != nil {
			t.Fatalf("ListAcls %s: %v", what, err)
		}
		assertSaramaBindings(t, "ListAcls "+what, want, flattenSarama(rs))
	}
	all := sarama.AclFilter{ResourceType: sarama.AclResourceAny, ResourcePatternTypeFilter: sarama.AclPatternAny,
		Operation: sarama.AclOperationAny, PermissionType: sarama.AclPermissionAny}
	list("all", all, bobDescribe, aliceWrite, aliceGroup, bobGroupDeny)
	f := all
	f.ResourceType, f.ResourceName, f.ResourcePatternTypeFilter = sarama.AclResourceTopic, &topic, sarama.AclPatternLiteral
	list("LITERAL topic", f, bobDescribe, aliceWrite)
	f = all
	f.ResourceType, f.ResourceName, f.ResourcePatternTypeFilter = sarama.AclResourceGroup, &group, sarama.AclPatternMatch
	list("MATCH group", f, aliceGroup, bobGroupDeny)
	f.ResourcePatternTypeFilter = sarama.AclPatternPrefixed
	list("PREFIXED group, the full name", f)
	f.ResourceName = &groupRes.ResourceName
	list("PREFIXED group", f, aliceGroup, bobGroupDeny)
	f = all
	bob, star := "User:bob", "*"
	f.Principal, f.Host, f.PermissionType = &bob, &star, sarama.AclPermissionDeny
	list("DENY User:bob", f, bobGroupDeny)

	// alice (not a super user) may not create ACLs.
	aliceAdmin, err := sarama.NewClusterAdmin([]string{b.sasl}, cfgAs(sarama.SASLTypeSCRAMSHA256, "alice", aclAlicePw))
	if err != nil {
		t.Fatalf("NewClusterAdmin as alice: %v", err)
	}
	defer aliceAdmin.Close()
	if err := aliceAdmin.CreateACLs([]*sarama.ResourceAcls{{Resource: topicRes, Acls: []*sarama.Acl{&bobGroupDeny.Acl}}}); !errors.Is(err, sarama.ErrClusterAuthorizationFailed) {
		t.Fatalf("CreateACLs as alice: %v, want ErrClusterAuthorizationFailed", err)
	}

	// alice's idempotent SyncProducer writes; bob (DESCRIBE only) is refused by Produce.
	rs := secSample(topic, "sarama-acl", true)
	ap, err := sarama.NewSyncProducer([]string{b.sasl}, cfgAs(sarama.SASLTypeSCRAMSHA256, "alice", aclAlicePw))
	if err != nil {
		t.Fatalf("NewSyncProducer as alice: %v", err)
	}
	defer ap.Close()
	assertRecs(t, "alice produced", rs, saramaSyncProduce(t, ap, rs))
	bobRefused := func(what string) {
		t.Helper()
		cfg := cfgAs(sarama.SASLTypePlaintext, "bob", aclBobPw)
		cfg.Producer.Idempotent = false // bob may WRITE no topic: InitProducerId would be refused first
		cfg.Producer.Retry.Max = 1
		p, err := sarama.NewSyncProducer([]string{b.sasl}, cfg)
		if err != nil {
			t.Fatalf("NewSyncProducer as bob: %v", err)
		}
		defer p.Close()
		done := make(chan error, 1)
		go func() {
			_, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: 0, Value: sarama.StringEncoder("v")})
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, sarama.ErrTopicAuthorizationFailed) {
				t.Fatalf("bob's SendMessage %s: %v, want ErrTopicAuthorizationFailed", what, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("bob's SendMessage %s: no answer within 20 s", what)
		}
	}
	bobRefused("with DESCRIBE only")

	// Delete bob's bindings by filter (any resource, pattern, operation, permission).
	f = all
	f.Principal = &bob
	deleted, err := admin.DeleteACL(f, false)
	if err != nil {
		t.Fatalf("DeleteACL as admin: %v", err)
	}
	var got []saramaBinding
	for _, m := range deleted {
		if !errors.Is(m.Err, sarama.ErrNoError) {
			t.Fatalf("DeleteACL match %v: %v", m, m.Err)
		}
		got = append(got, saramaBinding{m.Resource, m.Acl})
	}
	assertSaramaBindings(t, "DeleteACL User:bob", []saramaBinding{bobDescribe, bobGroupDeny}, got)
	list("all after the delete", all, aliceWrite, aliceGroup)
	bobRefused("without any ACL")
}
