package compat

// Delegation tokens (KIP-48) through franz-go: kadm's CreateDelegationToken,
// RenewDelegationToken, ExpireDelegationToken and DescribeDelegationTokens, and kgo clients
// that log in with a token (sasl/scram with IsToken: SCRAM's client-first message carries
// `tokenauth=true`, the user is the token id and the password the HMAC in base64) and so act
// as the token's owner. Run alone with `go test -run TestDelegationToken`.
//
// The broker has a PLAINTEXT listener (User:ANONYMOUS, the super user: it creates topics and
// ACLs; token requests there are refused) and a SASL_PLAINTEXT one with the users alice, bob
// and carol (SCRAM-SHA-256 and -512), a delegation token secret, a max lifetime of 2 h and an
// expiry time of 1 h (not the defaults, so the timestamps show they are used), and an
// authorizer, so the ACLs show whose identity a token session has.
//
// Against the reference Kafka 4.4 (COMPAT_BROKER=kafka) the same setup is given as Kafka
// properties (listeners with a CONTROLLER one, SCRAM JAAS entries, delegation.token.*,
// StandardAuthorizer with super.users=User:ANONYMOUS) and the users are made with
// AlterUserScramCredentials over PLAINTEXT. Kafka applies token and ACL changes to the
// broker's caches a moment after it answers, so the waits for them are bounded polls that end
// on the positive answer; nothing is concluded from a sleep.

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

const (
	dtSecret      = "klamm-go-dt-s3cret"
	dtMaxLifetime = 2 * time.Hour
	dtExpiryTime  = time.Hour
	dtSettle      = 20 * time.Second // bound for a change to reach Kafka's broker caches
)

var dtUsers = []string{"alice", "bob", "carol"}

func dtPassword(user string) string { return user + "-pw" }

// dtBroker is a broker with PLAINTEXT (first: Addr) and SASL_PLAINTEXT listeners.
type dtBroker struct {
	*Broker
	sasl string
}

func startTokenBroker(t *testing.T) *dtBroker {
	t.Helper()
	plaintext := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	saslAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	listeners := "PLAINTEXT://" + plaintext + ",SASL_PLAINTEXT://" + saslAddr
	var b *Broker
	if useKafka() {
		ctrl := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		props := []string{
			"listeners=" + listeners + ",CONTROLLER://" + ctrl,
			"advertised.listeners=" + listeners,
			"controller.quorum.bootstrap.servers=" + ctrl,
			"listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
			"sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512",
			"listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;",
			"listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;",
			"delegation.token.secret.key=" + dtSecret,
			fmt.Sprintf("delegation.token.max.lifetime.ms=%d", dtMaxLifetime.Milliseconds()),
			fmt.Sprintf("delegation.token.expiry.time.ms=%d", dtExpiryTime.Milliseconds()),
			"authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
			"super.users=User:ANONYMOUS", // the PLAINTEXT and CONTROLLER listeners
		}
		b = startBrokerKafkaProps(t, props)
	} else {
		var users []string
		for _, u := range dtUsers {
			users = append(users, u+":"+dtPassword(u))
		}
		b = startBroker(t,
			"--listeners", listeners,
			"--bootstrap-users", strings.Join(users, ","),
			"--delegation-token-secret-key", dtSecret,
			"--delegation-token-max-lifetime-ms", fmt.Sprint(dtMaxLifetime.Milliseconds()),
			"--delegation-token-expiry-time-ms", fmt.Sprint(dtExpiryTime.Milliseconds()),
			"--authorizer", "--super-users", "User:ANONYMOUS")
	}
	if b.Addr() != plaintext {
		t.Fatalf("broker address %s, want the PLAINTEXT listener %s", b.Addr(), plaintext)
	}
	db := &dtBroker{Broker: b, sasl: saslAddr}
	if useKafka() {
		// Kafka refuses a user altered twice in one request: one request per mechanism.
		adm := kadmClient(t, b)
		for _, m := range []kadm.ScramMechanism{kadm.ScramSha256, kadm.ScramSha512} {
			var up []kadm.UpsertSCRAM
			for _, u := range dtUsers {
				up = append(up, kadm.UpsertSCRAM{User: u, Mechanism: m, Iterations: 4096, Password: dtPassword(u)})
			}
			res, err := adm.AlterUserSCRAMs(testCtx(t, 20*time.Second), nil, up)
			if err == nil {
				err = res.Error()
			}
			if err != nil {
				t.Fatalf("AlterUserSCRAMs: %v", err)
			}
		}
		for _, u := range dtUsers {
			for _, sha512 := range []bool{false, true} {
				db.waitLogin(t, u+" logging in", franzSCRAM(u, dtPassword(u), sha512))
			}
		}
	}
	return db
}

// as is a kgo client logged in over SASL_PLAINTEXT with mech.
func (b *dtBroker) as(t *testing.T, mech sasl.Mechanism, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return kgoClient(t, b.Broker, append([]kgo.Opt{kgo.SeedBrokers(b.sasl), kgo.SASL(mech)}, opts...)...)
}

func (b *dtBroker) admAs(t *testing.T, user string) *kadm.Client {
	t.Helper()
	return kadm.NewClient(b.as(t, franzSCRAM(user, dtPassword(user), false)))
}

// ping sends ApiVersions once over SASL_PLAINTEXT with mech (kgo's Ping: no retries); it
// returns the login's error.
func (b *dtBroker) ping(t *testing.T, mech sasl.Mechanism) error {
	t.Helper()
	cl := kgoClientNoClose(t, b.Broker, kgo.SeedBrokers(b.sasl), kgo.SASL(mech))
	defer cl.Close()
	return cl.Ping(testCtx(t, 15*time.Second))
}

// waitLogin waits (bounded) until a login with mech succeeds: Kafka's broker learns tokens
// and users from its metadata log a moment after the controller answered.
func (b *dtBroker) waitLogin(t *testing.T, what string, mech sasl.Mechanism) {
	t.Helper()
	var last error
	deadline := time.Now().Add(dtSettle)
	for tries := 1; ; tries++ {
		if last = b.ping(t, mech); last == nil {
			if tries > 1 {
				t.Logf("%s: logged in at try %d", what, tries)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no successful login within %v; last error %v", what, dtSettle, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tokenMech is franz-go's SCRAM with the token: user = token id, password = base64(HMAC),
// `tokenauth=true`.
func tokenMech(tok kadm.DelegationToken, sha512 bool) sasl.Mechanism {
	a := scram.Auth{User: tok.TokenID, Pass: base64.StdEncoding.EncodeToString(tok.HMAC), IsToken: true}
	if sha512 {
		return a.AsSha512Mechanism()
	}
	return a.AsSha256Mechanism()
}

func mechName(sha512 bool) string {
	if sha512 {
		return "SCRAM-SHA-512"
	}
	return "SCRAM-SHA-256"
}

func user(name string) kadm.Principal { return kadm.Principal{Type: "User", Name: name} }

// kafkaHMAC is Kafka's HMAC of a token: HmacSHA512 of the token id (UTF-8) under the secret.
func kafkaHMAC(tokenID string) []byte {
	m := hmac.New(sha512.New, []byte(dtSecret))
	m.Write([]byte(tokenID))
	return m.Sum(nil)
}

// A Kafka Uuid as a string: 16 bytes, URL-safe base64 without padding, not starting with "-".
var tokenIDRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]{21}$`)

// inWindow checks from <= got - d <= to (milliseconds; the broker reads the same clock
// between the test's from and to; 5 ms slack).
func inWindow(t *testing.T, what string, got time.Time, from, to time.Time, d time.Duration) {
	t.Helper()
	g, lo, hi := got.UnixMilli(), from.Add(d).UnixMilli()-5, to.Add(d).UnixMilli()+5
	if g < lo || g > hi {
		t.Fatalf("%s = %d (%s), want within [%d, %d] (request time + %v)", what, g, got.Format(time.RFC3339Nano), lo, hi, d)
	}
}

// tokenSet names the described tokens by the test's labels, sorted (an unknown id as itself).
func tokenSet(ts kadm.DelegationTokens, labels map[string]string) []string {
	out := []string{}
	for _, d := range ts {
		if l, ok := labels[d.TokenID]; ok {
			out = append(out, l)
		} else {
			out = append(out, "?"+d.TokenID)
		}
	}
	sort.Strings(out)
	return out
}

func describeTokens(t *testing.T, adm *kadm.Client, owners ...kadm.Principal) kadm.DelegationTokens {
	t.Helper()
	ts, err := adm.DescribeDelegationTokens(testCtx(t, 15*time.Second), owners...)
	if err != nil {
		t.Fatalf("DescribeDelegationTokens(%v): %v", owners, err)
	}
	return ts
}

// createToken creates a token as the client's user and checks Kafka's answer: the owner and
// requester, a 22-character id, the HMAC (HmacSHA512 of the id under the secret) and the
// timestamps (issue within the request, expiry and max from the lifetimes). While the
// answer is retryOn (an ACL Kafka has not applied yet), it tries again (bounded).
func createToken(t *testing.T, adm *kadm.Client, req kadm.CreateDelegationToken, owner, requester string, expiry, max time.Duration, retryOn error) kadm.DelegationToken {
	t.Helper()
	var tok kadm.DelegationToken
	var err error
	var from, to time.Time
	deadline := time.Now().Add(dtSettle)
	for tries := 1; ; tries++ {
		from = time.Now()
		tok, err = adm.CreateDelegationToken(testCtx(t, 15*time.Second), req)
		to = time.Now()
		if err == nil || retryOn == nil || !errors.Is(err, retryOn) || time.Now().After(deadline) {
			if err == nil && tries > 1 {
				t.Logf("created at try %d", tries)
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("CreateDelegationToken as %s: %v", requester, err)
	}
	if tok.Owner != user(owner) || tok.TokenRequesterPrincipal != user(requester) {
		t.Fatalf("token owner %+v requester %+v, want User:%s and User:%s", tok.Owner, tok.TokenRequesterPrincipal, owner, requester)
	}
	if !tokenIDRe.MatchString(tok.TokenID) {
		t.Fatalf("token id %q is not a 22-character Kafka Uuid string", tok.TokenID)
	}
	if len(tok.HMAC) != 64 || !hmac.Equal(tok.HMAC, kafkaHMAC(tok.TokenID)) {
		t.Fatalf("HMAC %x (%d bytes), want HmacSHA512(secret, id) %x", tok.HMAC, len(tok.HMAC), kafkaHMAC(tok.TokenID))
	}
	inWindow(t, "issue timestamp", tok.IssueTimestamp, from, to, 0)
	if got := tok.ExpiryTimestamp.Sub(tok.IssueTimestamp); got != expiry {
		t.Fatalf("expiry - issue = %v, want %v", got, expiry)
	}
	if got := tok.MaxTimestamp.Sub(tok.IssueTimestamp); got != max {
		t.Fatalf("max - issue = %v, want %v", got, max)
	}
	return tok
}

// createUserACL creates ALLOW op on the USER resource `User:<name>` (kadm's ACLBuilder has no
// USER resources).
func createUserACL(t *testing.T, cl *kgo.Client, principal, name string, op kmsg.ACLOperation) {
	t.Helper()
	req := kmsg.NewPtrCreateACLsRequest()
	c := kmsg.NewCreateACLsRequestCreation()
	c.ResourceType = kmsg.ACLResourceTypeUser
	c.ResourceName = name
	c.ResourcePatternType = kmsg.ACLResourcePatternTypeLiteral
	c.Principal = principal
	c.Host = "*"
	c.Operation = op
	c.PermissionType = kmsg.ACLPermissionTypeAllow
	req.Creations = append(req.Creations, c)
	resp, err := req.RequestWith(testCtx(t, 15*time.Second), cl)
	if err != nil {
		t.Fatalf("CreateACLs USER %s: %v", name, err)
	}
	for _, r := range resp.Results {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			t.Fatalf("CreateACLs USER %s %v for %s: %v (%v)", name, op, principal, err, deref(r.ErrorMessage))
		}
	}
}

// kadm's durations go on the wire in milliseconds: kadm's "-1" (a Duration of -1 ns) would
// be 0 ms, which ExpireDelegationToken takes as "in 0 ms", not "now".
const minusOneMs = -time.Millisecond

// described is the token of that id in ts, or nil.
func described(ts kadm.DelegationTokens, id string) *kadm.DelegationToken {
	for i := range ts {
		if ts[i].TokenID == id {
			return &ts[i]
		}
	}
	return nil
}

// TestDelegationTokenFranz: tokens created, used, refused, renewed, described and expired
// through franz-go; the subtests run in order on one broker and share the tokens.
func TestDelegationTokenFranz(t *testing.T) {
	b := startTokenBroker(t)
	adminCl := kgoClient(t, b.Broker) // PLAINTEXT: User:ANONYMOUS, the super user
	admin := kadm.NewClient(adminCl)
	aliceCl := b.as(t, franzSCRAM("alice", dtPassword("alice"), false))
	alice, bob, carol := kadm.NewClient(aliceCl), b.admAs(t, "bob"), b.admAs(t, "carol")

	// The tokens: aliceTok (alice's, renewer bob), aliceShort (alice's, max lifetime 30 min),
	// bobTok (bob's), forBob (requested by alice with owner bob).
	var aliceTok, aliceShort, bobTok, forBob kadm.DelegationToken
	labels := map[string]string{}
	topics := []string{topicName(t, "sha256"), topicName(t, "sha512")}

	t.Run("create", func(t *testing.T) {
		aliceTok = createToken(t, alice, kadm.CreateDelegationToken{Renewers: []kadm.Principal{user("bob")}, MaxLifetime: minusOneMs},
			"alice", "alice", dtExpiryTime, dtMaxLifetime, nil)
		// A max lifetime below the broker's is honoured, and caps the expiry.
		aliceShort = createToken(t, alice, kadm.CreateDelegationToken{MaxLifetime: 30 * time.Minute},
			"alice", "alice", 30*time.Minute, 30*time.Minute, nil)
		bobTok = createToken(t, bob, kadm.CreateDelegationToken{MaxLifetime: minusOneMs}, "bob", "bob", dtExpiryTime, dtMaxLifetime, nil)
		if aliceTok.TokenID == aliceShort.TokenID || string(aliceTok.HMAC) == string(aliceShort.HMAC) {
			t.Fatalf("two tokens share an id or an HMAC: %s %s", aliceTok.TokenID, aliceShort.TokenID)
		}

		// A token for another owner (v3, KIP-373) needs CREATE_TOKENS on User:<owner>.
		forOwner := func(name string) kadm.CreateDelegationToken {
			return kadm.CreateDelegationToken{Owner: &kadm.Principal{Name: name}, MaxLifetime: minusOneMs}
		}
		_, err := alice.CreateDelegationToken(testCtx(t, 15*time.Second), forOwner("bob"))
		wantKerr(t, "alice creates a token owned by bob without CREATE_TOKENS", err, kerr.DelegationTokenAuthorizationFailed)
		createUserACL(t, adminCl, "User:alice", "User:bob", kmsg.ACLOperationCreateTokens)
		forBob = createToken(t, alice, forOwner("bob"), "bob", "alice", dtExpiryTime, dtMaxLifetime,
			kerr.DelegationTokenAuthorizationFailed) // until Kafka's broker applied the ACL
		_, err = alice.CreateDelegationToken(testCtx(t, 15*time.Second), forOwner("carol"))
		wantKerr(t, "alice creates a token owned by carol", err, kerr.DelegationTokenAuthorizationFailed)

		labels = map[string]string{aliceTok.TokenID: "aliceTok", aliceShort.TokenID: "aliceShort", bobTok.TokenID: "bobTok", forBob.TokenID: "forBob"}
		t.Logf("tokens: %v", labels)

		// DescribeDelegationToken has every field of the tokens as created, and the renewers
		// (kadm fills Create's from the request).
		for _, c := range []struct {
			adm *kadm.Client
			tok kadm.DelegationToken
		}{{alice, aliceTok}, {alice, aliceShort}, {bob, bobTok}, {bob, forBob}} {
			var got *kadm.DelegationToken
			eventually(t, dtSettle, labels[c.tok.TokenID]+" described", func() bool {
				got = described(describeTokens(t, c.adm), c.tok.TokenID)
				return got != nil
			})
			if fmt.Sprintf("%+v", *got) != fmt.Sprintf("%+v", c.tok) {
				t.Fatalf("%s described\n  %+v\nwant (as created)\n  %+v", labels[c.tok.TokenID], *got, c.tok)
			}
		}
	})

	t.Run("token_produce_consume", func(t *testing.T) {
		// alice may READ and WRITE the two topics; bob has no ACL.
		for _, topic := range topics {
			createTopic(t, b.Broker, topic, 1, nil)
		}
		createACLs(t, admin, kadm.NewACLs().Topics(topics...).ResourcePatternType(lit).
			Allow("User:alice").Operations(kadm.OpRead, kadm.OpWrite))
		// Kafka's broker applies ACLs a moment later: wait until alice (password) may describe them.
		eventually(t, dtSettle, "alice's ACLs applied", func() bool {
			d, err := alice.ListTopics(testCtx(t, 15*time.Second), topics...)
			return err == nil && d[topics[0]].Err == nil && d[topics[1]].Err == nil
		})
		for i, sha512 := range []bool{false, true} {
			t.Run(mechName(sha512), func(t *testing.T) {
				topic := topics[i]
				mech := tokenMech(aliceTok, sha512)
				b.waitLogin(t, "aliceTok", mech)
				// Without tokenauth=true the token id is a user name no one has.
				err := b.ping(t, franzSCRAM(aliceTok.TokenID, base64.StdEncoding.EncodeToString(aliceTok.HMAC), sha512))
				if !errors.Is(err, kerr.SaslAuthenticationFailed) || !strings.Contains(err.Error(), scramAuthFailed+mechName(sha512)) {
					t.Fatalf("aliceTok's id and HMAC as a user's login: want SASL_AUTHENTICATION_FAILED with the broker's message, got %v", err)
				}
				rs := withOffsets(sample(topic, 12, "token", true), 0, 0)
				// The idempotent producer (the default): InitProducerId needs WRITE on some topic.
				prod := b.as(t, mech, kgo.RecordPartitioner(kgo.ManualPartitioner()))
				assertRecs(t, "produced with aliceTok", rs, kgoProduce(t, prod, rs))
				cons := b.as(t, mech, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
				assertRecs(t, "consumed with aliceTok", rs, kgoRecs(kgoPoll(t, cons, len(rs), 20*time.Second)))
				// bob's token is bob: refused the topic alice may write.
				bobMech := tokenMech(bobTok, sha512)
				b.waitLogin(t, "bobTok", bobMech)
				wantKerr(t, "bobTok produces to "+topic, produceErr(t, b.as(t, bobMech, kgo.DisableIdempotentWrite()), topic),
					kerr.TopicAuthorizationFailed)
			})
		}
	})

	t.Run("token_session_refused", func(t *testing.T) {
		// A session that logged in with a token may not manage tokens, nor may PLAINTEXT.
		tokAdm := kadm.NewClient(b.as(t, tokenMech(aliceTok, true)))
		for _, c := range []struct {
			name string
			adm  *kadm.Client
		}{{"token session", tokAdm}, {"PLAINTEXT", admin}} {
			ctx := testCtx(t, 15*time.Second)
			_, err := c.adm.CreateDelegationToken(ctx, kadm.CreateDelegationToken{MaxLifetime: minusOneMs})
			wantKerr(t, c.name+": create", err, kerr.DelegationTokenRequestNotAllowed)
			_, err = c.adm.RenewDelegationToken(ctx, aliceTok.HMAC, time.Minute)
			wantKerr(t, c.name+": renew", err, kerr.DelegationTokenRequestNotAllowed)
			_, err = c.adm.ExpireDelegationToken(ctx, aliceTok.HMAC, minusOneMs)
			wantKerr(t, c.name+": expire", err, kerr.DelegationTokenRequestNotAllowed)
			_, err = c.adm.DescribeDelegationTokens(ctx)
			wantKerr(t, c.name+": describe", err, kerr.DelegationTokenRequestNotAllowed)
		}
		// Nothing changed: aliceTok is as created.
		if d := described(describeTokens(t, alice), aliceTok.TokenID); d == nil || !d.ExpiryTimestamp.Equal(aliceTok.ExpiryTimestamp) {
			t.Fatalf("aliceTok after the refused requests: %+v", d)
		}
	})

	t.Run("renew", func(t *testing.T) {
		ctx := testCtx(t, 60*time.Second)
		// bob, a renewer, renews alice's token: now + the period, ...
		from := time.Now()
		exp, err := bob.RenewDelegationToken(ctx, aliceTok.HMAC, 10*time.Minute)
		to := time.Now()
		if err != nil {
			t.Fatalf("bob renews aliceTok for 10 min: %v", err)
		}
		inWindow(t, "aliceTok's expiry after a 10 min renewal", exp, from, to, 10*time.Minute)
		// ... at most the expiry time (1 h).
		from = time.Now()
		exp, err = bob.RenewDelegationToken(ctx, aliceTok.HMAC, 10*time.Hour)
		to = time.Now()
		if err != nil {
			t.Fatalf("bob renews aliceTok for 10 h: %v", err)
		}
		inWindow(t, "aliceTok's expiry after a 10 h renewal (capped)", exp, from, to, dtExpiryTime)
		renewed := exp
		// carol is neither owner nor renewer; bob is no renewer of aliceShort.
		_, err = carol.RenewDelegationToken(ctx, aliceTok.HMAC, time.Minute)
		wantKerr(t, "carol renews aliceTok", err, kerr.DelegationTokenOwnerMismatch)
		_, err = bob.RenewDelegationToken(ctx, aliceShort.HMAC, time.Minute)
		wantKerr(t, "bob renews aliceShort", err, kerr.DelegationTokenOwnerMismatch)
		// an HMAC of no token
		bogus := make([]byte, 64)
		rand.Read(bogus)
		_, err = alice.RenewDelegationToken(ctx, bogus, time.Minute)
		wantKerr(t, "renewing an unknown HMAC", err, kerr.DelegationTokenNotFound)
		// The owner renews her own with the default period (-1 ms: the expiry time, 1 h),
		// which aliceShort's max (issue + 30 min) caps.
		exp, err = alice.RenewDelegationToken(ctx, aliceShort.HMAC, minusOneMs)
		if err != nil {
			t.Fatalf("alice renews aliceShort: %v", err)
		}
		if !exp.Equal(aliceShort.MaxTimestamp) {
			t.Fatalf("aliceShort's expiry after a renewal %v, want its max %v", exp, aliceShort.MaxTimestamp)
		}
		// Describe reports the renewal (Kafka: once its broker applied it).
		eventually(t, dtSettle, "aliceTok's renewed expiry described", func() bool {
			d := described(describeTokens(t, bob), aliceTok.TokenID)
			return d != nil && d.ExpiryTimestamp.Equal(renewed)
		})
		b.waitLogin(t, "aliceTok after the renewals", tokenMech(aliceTok, false))
	})

	t.Run("describe_filters", func(t *testing.T) {
		for _, c := range []struct {
			name   string
			adm    *kadm.Client
			owners []kadm.Principal
			want   []string
		}{
			// a token is described to its owner, requester and renewers (no DESCRIBE ACLs yet)
			{"alice, all", alice, nil, []string{"aliceShort", "aliceTok", "forBob"}},
			{"bob, all", bob, nil, []string{"aliceTok", "bobTok", "forBob"}},
			{"carol, all", carol, nil, []string{}},
			// the owners filter matches a token's owner, requester or renewers
			{"alice, owners [User:bob]", alice, []kadm.Principal{user("bob")}, []string{"aliceTok", "forBob"}},
			{"bob, owners [User:alice]", bob, []kadm.Principal{user("alice")}, []string{"aliceTok", "forBob"}},
			{"bob, owners [User:bob]", bob, []kadm.Principal{user("bob")}, []string{"aliceTok", "bobTok", "forBob"}},
			{"alice, owners [User:carol]", alice, []kadm.Principal{user("carol")}, []string{}},
			{"alice, owners [User:carol User:alice]", alice, []kadm.Principal{user("carol"), user("alice")}, []string{"aliceShort", "aliceTok", "forBob"}},
		} {
			if got := tokenSet(describeTokens(t, c.adm, c.owners...), labels); fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("describe as %s: got %v, want %v", c.name, got, c.want)
			}
		}
		// An empty owners list (not null: kadm sends null for no owners) describes nothing.
		req := kmsg.NewPtrDescribeDelegationTokenRequest()
		req.Owners = []kmsg.DescribeDelegationTokenRequestOwner{}
		resp, err := req.RequestWith(testCtx(t, 15*time.Second), aliceCl)
		if err != nil {
			t.Fatalf("describe with owners [] as alice: %v", err)
		}
		if resp.ErrorCode != 0 || len(resp.TokenDetails) != 0 {
			t.Fatalf("describe with owners [] as alice: error %d, %d tokens", resp.ErrorCode, len(resp.TokenDetails))
		}
		// carol with DESCRIBE_TOKENS on User:alice sees the tokens alice owns (not forBob), and
		// with DESCRIBE on bobTok's DELEGATION_TOKEN resource, bobTok.
		createUserACL(t, adminCl, "User:carol", "User:alice", kmsg.ACLOperationDescribeTokens)
		createACLs(t, admin, kadm.NewACLs().DelegationTokens(bobTok.TokenID).ResourcePatternType(lit).
			Allow("User:carol").Operations(kadm.OpDescribe))
		want := fmt.Sprint([]string{"aliceShort", "aliceTok", "bobTok"})
		var got []string
		eventually(t, dtSettle, "carol's describe to be "+want, func() bool {
			got = tokenSet(describeTokens(t, carol), labels)
			return fmt.Sprint(got) == want
		})
		if got := tokenSet(describeTokens(t, carol, user("bob")), labels); fmt.Sprint(got) != fmt.Sprint([]string{"aliceTok", "bobTok"}) {
			t.Fatalf("describe as carol, owners [User:bob]: got %v, want [aliceTok bobTok]", got)
		}
	})

	t.Run("expire", func(t *testing.T) {
		ctx := testCtx(t, 60*time.Second)
		_, err := carol.ExpireDelegationToken(ctx, aliceTok.HMAC, minusOneMs)
		wantKerr(t, "carol expires aliceTok", err, kerr.DelegationTokenOwnerMismatch)
		// A positive period: min(max, now + period), and the token stays.
		from := time.Now()
		exp, err := alice.ExpireDelegationToken(ctx, aliceShort.HMAC, 5*time.Minute)
		to := time.Now()
		if err != nil {
			t.Fatalf("alice expires aliceShort in 5 min: %v", err)
		}
		inWindow(t, "aliceShort's expiry", exp, from, to, 5*time.Minute)
		shortExp := exp
		// -1 ms: now, and the token is removed.
		from = time.Now()
		exp, err = alice.ExpireDelegationToken(ctx, aliceTok.HMAC, minusOneMs)
		to = time.Now()
		if err != nil {
			t.Fatalf("alice expires aliceTok: %v", err)
		}
		inWindow(t, "aliceTok's expiry after expire(-1)", exp, from, to, 0)
		// Its logins fail (Kafka: once its broker dropped the token).
		for _, sha512 := range []bool{false, true} {
			mech, want := tokenMech(aliceTok, sha512), scramAuthFailed+mechName(sha512)
			var last error
			tries := 0
			eventually(t, dtSettle, "aliceTok's "+mechName(sha512)+" login refused", func() bool {
				tries++
				last = b.ping(t, mech)
				return errors.Is(last, kerr.SaslAuthenticationFailed)
			})
			if !strings.Contains(last.Error(), want) {
				t.Fatalf("aliceTok's login: error %q lacks the broker's message %q", last, want)
			}
			t.Logf("aliceTok's %s login refused at try %d: %v", mechName(sha512), tries, last)
		}
		_, err = bob.RenewDelegationToken(ctx, aliceTok.HMAC, time.Minute)
		wantKerr(t, "bob renews the expired aliceTok", err, kerr.DelegationTokenNotFound)
		_, err = alice.ExpireDelegationToken(ctx, aliceTok.HMAC, minusOneMs)
		wantKerr(t, "alice expires aliceTok again", err, kerr.DelegationTokenNotFound)
		// Describe: aliceTok is gone, aliceShort has its new expiry.
		want := fmt.Sprint([]string{"aliceShort", "forBob"})
		var ts kadm.DelegationTokens
		eventually(t, dtSettle, "alice's describe to be "+want, func() bool {
			ts = describeTokens(t, alice)
			return fmt.Sprint(tokenSet(ts, labels)) == want
		})
		if d := described(ts, aliceShort.TokenID); !d.ExpiryTimestamp.Equal(shortExp) {
			t.Fatalf("aliceShort described with expiry %v, want %v", d.ExpiryTimestamp, shortExp)
		}
		// the other tokens still log in
		b.waitLogin(t, "aliceShort", tokenMech(aliceShort, true))
		b.waitLogin(t, "forBob", tokenMech(forBob, false))
	})

	// An expired token the sweep (every hour) has not removed yet: renew and expire with a
	// period >= 0 get DELEGATION_TOKEN_EXPIRED, describe still lists it, expire(-1) removes it.
	t.Run("expired_not_swept", func(t *testing.T) {
		ctx := testCtx(t, 60*time.Second)
		zero := createToken(t, alice, kadm.CreateDelegationToken{MaxLifetime: minusOneMs}, "alice", "alice", dtExpiryTime, dtMaxLifetime, nil)
		labels[zero.TokenID] = "zero"
		// Kafka's controller finds a token by its HMAC in the broker's token cache, which the
		// metadata log fills a moment after Create answered (until then: NOT_FOUND).
		eventually(t, dtSettle, "zero described", func() bool {
			return described(describeTokens(t, alice), zero.TokenID) != nil
		})
		// kadm's documented "-1" (a Duration of -1 ns) goes on the wire as 0 ms: expiry = now.
		from := time.Now()
		exp, err := alice.ExpireDelegationToken(ctx, zero.HMAC, -1)
		to := time.Now()
		if err != nil {
			t.Fatalf("alice expires zero in 0 ms: %v", err)
		}
		inWindow(t, "zero's expiry after expire(0 ms)", exp, from, to, 0)
		// Described with that expiry (Kafka: once the broker's cache has it, which is also what
		// Kafka's controller checks Renew and Expire against).
		eventually(t, dtSettle, "zero described with its new expiry", func() bool {
			d := described(describeTokens(t, alice), zero.TokenID)
			return d != nil && d.ExpiryTimestamp.Equal(exp)
		})
		for time.Now().UnixMilli() <= exp.UnixMilli()+1 { // expired once now > expiry
			time.Sleep(time.Millisecond)
		}
		_, err = alice.RenewDelegationToken(ctx, zero.HMAC, time.Minute)
		wantKerr(t, "alice renews the expired zero", err, kerr.DelegationTokenExpired)
		_, err = alice.ExpireDelegationToken(ctx, zero.HMAC, time.Minute)
		wantKerr(t, "alice expires the expired zero in 1 min", err, kerr.DelegationTokenExpired)
		if d := described(describeTokens(t, alice), zero.TokenID); d == nil || !d.ExpiryTimestamp.Equal(exp) {
			t.Fatalf("the expired zero described as %+v, want it listed with expiry %v", d, exp)
		}
		from = time.Now()
		exp, err = alice.ExpireDelegationToken(ctx, zero.HMAC, minusOneMs)
		to = time.Now()
		if err != nil {
			t.Fatalf("alice expires the expired zero with -1 ms: %v", err)
		}
		inWindow(t, "zero's expiry after expire(-1 ms)", exp, from, to, 0)
		_, err = alice.RenewDelegationToken(ctx, zero.HMAC, time.Minute)
		wantKerr(t, "alice renews the removed zero", err, kerr.DelegationTokenNotFound)
		want := fmt.Sprint([]string{"aliceShort", "forBob"})
		eventually(t, dtSettle, "alice's describe to be "+want, func() bool {
			return fmt.Sprint(tokenSet(describeTokens(t, alice), labels)) == want
		})
	})
}
