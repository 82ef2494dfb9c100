package compat

// TLS and SASL: franz-go, sarama and kafka-go against Klamm's SSL, SASL_PLAINTEXT and
// SASL_SSL listeners (`--listeners`, `--ssl-*`, `--bootstrap-users`); run alone with
// `go test -run TestSecurity`.
//
// Each test starts a broker with four listeners (PLAINTEXT first: the helpers that create
// topics use it) and a PKI of its own, made with crypto/x509 (X.509 v3, ECDSA P-256): a CA,
// the broker's certificate for IP 127.0.0.1 and DNS localhost, a client certificate signed
// by the CA (extended key usage clientAuth) and one signed by a CA the broker does not trust.
// Every client verifies the broker's certificate against the CA and its IP SAN (no
// InsecureSkipVerify).

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/segmentio/kafka-go"
	kafkasasl "github.com/segmentio/kafka-go/sasl"
	kafkaplain "github.com/segmentio/kafka-go/sasl/plain"
	kafkascram "github.com/segmentio/kafka-go/sasl/scram"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	xdgscram "github.com/xdg-go/scram"
)

const (
	secUser     = "alice"
	secPassword = "secret"
)

// Kafka's messages for a failed SASL authentication (PlainSaslServer, SaslServerAuthenticator).
const (
	plainAuthFailed = "Authentication failed: Invalid username or password"
	scramAuthFailed = "Authentication failed during authentication due to invalid credentials with SASL mechanism "
)

// ---------------------------------------------------------------- PKI

type secPKI struct {
	dir        string
	roots      *x509.CertPool // the CA the broker's certificate chains to
	client     tls.Certificate
	stranger   tls.Certificate // signed by a CA the broker does not trust
	caFile     string
	brokerCert string
	brokerKey  string
}

type secIssuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var secSerial = big.NewInt(time.Now().UnixNano())

func secCert(t *testing.T, tmpl *x509.Certificate, issuer *secIssuer) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secSerial = new(big.Int).Add(secSerial, big.NewInt(1))
	tmpl.SerialNumber = secSerial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(48 * time.Hour)
	parent, signer := tmpl, key
	if issuer != nil {
		parent, signer = issuer.cert, issuer.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key, der
}

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func keyPEM(t *testing.T, key *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf("PRIVATE KEY", der)
}

func makeSecPKI(t *testing.T) *secPKI {
	t.Helper()
	dir := t.TempDir()
	newCA := func(cn string) *secIssuer {
		cert, key, _ := secCert(t, &x509.Certificate{
			Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		}, nil)
		return &secIssuer{cert, key}
	}
	ca, other := newCA("klamm-go-test-ca"), newCA("klamm-go-other-ca")
	p := &secPKI{dir: dir, roots: x509.NewCertPool(), caFile: filepath.Join(dir, "ca.pem"),
		brokerCert: filepath.Join(dir, "broker.pem"), brokerKey: filepath.Join(dir, "broker.key")}
	p.roots.AddCert(ca.cert)
	write := func(path string, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(p.caFile, pemOf("CERTIFICATE", ca.cert.Raw))
	_, bkey, bder := secCert(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca)
	write(p.brokerCert, pemOf("CERTIFICATE", bder))
	write(p.brokerKey, keyPEM(t, bkey))
	clientCert := func(cn string, issuer *secIssuer) tls.Certificate {
		_, key, der := secCert(t, &x509.Certificate{
			Subject: pkix.Name{CommonName: cn, Organization: []string{"acme"}}, KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}, issuer)
		c, err := tls.X509KeyPair(pemOf("CERTIFICATE", der), keyPEM(t, key))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	p.client = clientCert("app", ca)
	p.stranger = clientCert("stranger", other)
	return p
}

// tlsConfig trusts the test CA (server name: the broker address's host, which every client
// sets itself) and presents the given client certificates.
func (p *secPKI) tlsConfig(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: p.roots, Certificates: certs, MinVersion: tls.VersionTLS12}
}

// ---------------------------------------------------------------- brokers

// secBroker is a broker with PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL listeners.
type secBroker struct {
	*Broker
	pki                         *secPKI
	ssl, saslPlaintext, saslSSL string
}

// startSecBroker starts a broker with the four listeners, the users alice (secret) and bob,
// and the PKI's broker certificate; clientAuth, unless empty, is --ssl-client-auth (with
// --ssl-ca the PKI's CA).
func startSecBroker(t *testing.T, clientAuth string) *secBroker {
	t.Helper()
	if useKafka() {
		t.Skip("COMPAT_BROKER=kafka: the security flags (--listeners with fixed ports, --ssl-*) are not mapped to Kafka here")
	}
	pki := makeSecPKI(t)
	port := func() string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }
	plaintext, ssl, sp, ss := port(), port(), port(), port()
	flags := []string{
		"--listeners", "PLAINTEXT://" + plaintext + ",SSL://" + ssl + ",SASL_PLAINTEXT://" + sp + ",SASL_SSL://" + ss,
		"--ssl-certificate", pki.brokerCert, "--ssl-key", pki.brokerKey,
		"--bootstrap-users", secUser + ":" + secPassword + ",bob:b0b-Pa55",
	}
	if clientAuth != "" {
		flags = append(flags, "--ssl-client-auth", clientAuth, "--ssl-ca", pki.caFile)
	}
	b := startBroker(t, flags...)
	if b.Addr() != plaintext {
		t.Fatalf("broker address %s, want the PLAINTEXT listener %s", b.Addr(), plaintext)
	}
	return &secBroker{Broker: b, pki: pki, ssl: ssl, saslPlaintext: sp, saslSSL: ss}
}

// secSample is the sample set for a topic with its offsets 0..n-1 in partition 0.
func secSample(topic, tag string, nullHeaders bool) []rec {
	return withOffsets(sample(topic, 12, tag, nullHeaders), 0, 0)
}

// ---------------------------------------------------------------- franz-go

func franzSCRAM(user, password string, sha512 bool) sasl.Mechanism {
	a := scram.Auth{User: user, Pass: password}
	if sha512 {
		return a.AsSha512Mechanism()
	}
	return a.AsSha256Mechanism()
}

func franzRoundTrip(t *testing.T, b *secBroker, addr string, opts ...kgo.Opt) {
	t.Helper()
	topic := topicName(t, "t")
	createTopic(t, b.Broker, topic, 1, nil) // over PLAINTEXT
	rs := secSample(topic, "franz", true)
	base := append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)
	produced := kgoProduce(t, kgoClient(t, b.Broker, append(base, kgo.RecordPartitioner(kgo.ManualPartitioner()))...), rs)
	assertRecs(t, "produced over "+addr, rs, produced)
	cl := kgoClient(t, b.Broker, append(base, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))...)
	assertRecs(t, "consumed over "+addr, rs, kgoRecs(kgoPoll(t, cl, len(rs), 20*time.Second)))
}

// franzPing sends ApiVersions to the seed once (kgo's Ping: no retries) and returns the error.
func franzPing(t *testing.T, b *secBroker, addr string, opts ...kgo.Opt) error {
	t.Helper()
	cl := kgoClient(t, b.Broker, append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	return cl.Ping(testCtx(t, 15*time.Second))
}

// TestSecurityFranz: franz-go over SSL, SASL_PLAINTEXT (PLAIN, SCRAM-SHA-256) and SASL_SSL
// (SCRAM-SHA-512); wrong credentials; mTLS on a broker with --ssl-client-auth required.
func TestSecurityFranz(t *testing.T) {
	b := startSecBroker(t, "")
	tlsCfg := b.pki.tlsConfig()
	t.Run("SSL", func(t *testing.T) {
		franzRoundTrip(t, b, b.ssl, kgo.DialTLSConfig(tlsCfg))
	})
	t.Run("SASL_PLAINTEXT_PLAIN", func(t *testing.T) {
		franzRoundTrip(t, b, b.saslPlaintext, kgo.SASL(plain.Auth{User: secUser, Pass: secPassword}.AsMechanism()))
	})
	t.Run("SASL_PLAINTEXT_SCRAM-SHA-256", func(t *testing.T) {
		franzRoundTrip(t, b, b.saslPlaintext, kgo.SASL(franzSCRAM(secUser, secPassword, false)))
	})
	t.Run("SASL_SSL_SCRAM-SHA-512", func(t *testing.T) {
		franzRoundTrip(t, b, b.saslSSL, kgo.DialTLSConfig(tlsCfg), kgo.SASL(franzSCRAM(secUser, secPassword, true)))
	})
	t.Run("wrong_credentials", func(t *testing.T) {
		for _, c := range []struct {
			name, addr, want string
			opts             []kgo.Opt
		}{
			{"PLAIN_wrong_password", b.saslPlaintext, plainAuthFailed,
				[]kgo.Opt{kgo.SASL(plain.Auth{User: secUser, Pass: "wrong"}.AsMechanism())}},
			{"SCRAM-SHA-512_wrong_password", b.saslSSL, scramAuthFailed + "SCRAM-SHA-512",
				[]kgo.Opt{kgo.DialTLSConfig(tlsCfg), kgo.SASL(franzSCRAM(secUser, "wrong", true))}},
			{"SCRAM-SHA-256_unknown_user", b.saslPlaintext, scramAuthFailed + "SCRAM-SHA-256",
				[]kgo.Opt{kgo.SASL(franzSCRAM("mallory", secPassword, false))}},
		} {
			err := franzPing(t, b, c.addr, c.opts...)
			if !errors.Is(err, kerr.SaslAuthenticationFailed) {
				t.Fatalf("%s: want SASL_AUTHENTICATION_FAILED, got %v", c.name, err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%s: error %q lacks the broker's message %q", c.name, err, c.want)
			}
		}
		// the right password still works on the same listener
		if err := franzPing(t, b, b.saslSSL, kgo.DialTLSConfig(tlsCfg), kgo.SASL(franzSCRAM(secUser, secPassword, true))); err != nil {
			t.Fatalf("ping with the right password: %v", err)
		}
	})
	t.Run("mTLS", func(t *testing.T) {
		strict := startSecBroker(t, "required")
		franzRoundTrip(t, strict, strict.ssl, kgo.DialTLSConfig(strict.pki.tlsConfig(strict.pki.client)))
		// Go's client sends a certificate only when its issuer is among the CAs the broker's
		// CertificateRequest names; the stranger's certificate is forced on the broker instead.
		forced := strict.pki.tlsConfig()
		forced.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &strict.pki.stranger, nil
		}
		for _, c := range []struct {
			name string
			cfg  *tls.Config
			want string // the TLS alert the broker sends (TLS 1.3: after the client's handshake)
		}{
			{"no_certificate", strict.pki.tlsConfig(), "certificate required"},
			{"certificate_not_among_the_CAs_asked", strict.pki.tlsConfig(strict.pki.stranger), "certificate required"},
			{"untrusted_CA", forced, "unknown certificate authority"},
		} {
			err := franzPing(t, strict, strict.ssl, kgo.DialTLSConfig(c.cfg))
			var op *net.OpError
			if err == nil || !errors.As(err, &op) || op.Op != "remote error" || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%s: want the broker's TLS alert %q, got %v", c.name, c.want, err)
			}
		}
	})
	// Kafka applies the broker-wide ssl.client.auth to SSL listeners only (KIP-684: a SASL_SSL
	// listener asks for a certificate only with listener.name.<l>.ssl.client.auth), so this
	// client, with SASL and no certificate, gets in with Kafka.
	t.Run("mTLS_SASL_SSL_without_certificate", func(t *testing.T) {
		strict := startSecBroker(t, "required")
		opts := []kgo.Opt{kgo.DialTLSConfig(strict.pki.tlsConfig()), kgo.SASL(plain.Auth{User: secUser, Pass: secPassword}.AsMechanism())}
		if err := franzPing(t, strict, strict.saslSSL, opts...); err != nil {
			t.Fatalf("SASL_SSL (PLAIN) without a client certificate: %v", err)
		}
		franzRoundTrip(t, strict, strict.saslSSL, opts...)
	})
}

// ---------------------------------------------------------------- sarama

// xdgSCRAM is sarama's SCRAMClient over github.com/xdg-go/scram (as in sarama's examples).
type xdgSCRAM struct {
	hash xdgscram.HashGeneratorFcn
	conv *xdgscram.ClientConversation
}

func (x *xdgSCRAM) Begin(user, password, authzID string) error {
	c, err := x.hash.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	x.conv = c.NewConversation()
	return nil
}

func (x *xdgSCRAM) Step(challenge string) (string, error) { return x.conv.Step(challenge) }
func (x *xdgSCRAM) Done() bool                            { return x.conv.Done() }

// saramaSecConfig: TLS when tlsCfg is set, SASL when mechanism is (PLAIN, SCRAM-SHA-256/512).
func saramaSecConfig(tlsCfg *tls.Config, mechanism, user, password string) *sarama.Config {
	cfg := saramaConfig()
	if tlsCfg != nil {
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = tlsCfg
	}
	if mechanism != "" {
		cfg.Net.SASL.Enable = true
		cfg.Net.SASL.Mechanism = sarama.SASLMechanism(mechanism)
		cfg.Net.SASL.User, cfg.Net.SASL.Password = user, password
		switch mechanism {
		case sarama.SASLTypeSCRAMSHA256:
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &xdgSCRAM{hash: xdgscram.SHA256} }
		case sarama.SASLTypeSCRAMSHA512:
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &xdgSCRAM{hash: xdgscram.SHA512} }
		}
	}
	return cfg
}

func saramaRoundTrip(t *testing.T, b *secBroker, addr string, cfg *sarama.Config) {
	t.Helper()
	topic := topicName(t, "t")
	createTopic(t, b.Broker, topic, 1, nil) // over PLAINTEXT
	rs := secSample(topic, "sarama", true)
	p, err := sarama.NewSyncProducer([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("NewSyncProducer over %s: %v", addr, err)
	}
	defer p.Close()
	assertRecs(t, "produced over "+addr, rs, saramaSyncProduce(t, p, rs))
	c, err := sarama.NewConsumer([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("NewConsumer over %s: %v", addr, err)
	}
	defer c.Close()
	pc, err := c.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatalf("ConsumePartition: %v", err)
	}
	defer pc.Close()
	var got []rec
	timeout := time.After(20 * time.Second)
	for len(got) < len(rs) {
		select {
		case m := <-pc.Messages():
			got = append(got, fromSarama(m))
		case err := <-pc.Errors():
			t.Fatalf("partition consumer: %v", err)
		case <-timeout:
			t.Fatalf("read %d of %d messages over %s", len(got), len(rs), addr)
		}
	}
	assertRecs(t, "consumed over "+addr, rs, got)
}

// TestSecuritySarama: sarama over SASL_SSL with SCRAM-SHA-512 (xdg-go/scram) and over SSL;
// a wrong password.
func TestSecuritySarama(t *testing.T) {
	b := startSecBroker(t, "")
	tlsCfg := b.pki.tlsConfig()
	t.Run("SASL_SSL_SCRAM-SHA-512", func(t *testing.T) {
		saramaRoundTrip(t, b, b.saslSSL, saramaSecConfig(tlsCfg, sarama.SASLTypeSCRAMSHA512, secUser, secPassword))
	})
	t.Run("SSL", func(t *testing.T) {
		saramaRoundTrip(t, b, b.ssl, saramaSecConfig(tlsCfg, "", "", ""))
	})
	t.Run("wrong_password", func(t *testing.T) {
		cfg := saramaSecConfig(tlsCfg, sarama.SASLTypeSCRAMSHA512, secUser, "wrong")
		cfg.Metadata.Retry.Max = 0
		cl, err := sarama.NewClient([]string{b.saslSSL}, cfg)
		if err == nil {
			cl.Close()
			t.Fatal("NewClient with a wrong password succeeded")
		}
		if !errors.Is(err, sarama.ErrSASLAuthenticationFailed) || !strings.Contains(err.Error(), scramAuthFailed+"SCRAM-SHA-512") {
			t.Fatalf("want SASL_AUTHENTICATION_FAILED with the broker's message, got %v", err)
		}
	})
}

// ---------------------------------------------------------------- kafka-go

func kafkaGoSCRAM512(t *testing.T, user, password string) kafkasasl.Mechanism {
	m, err := kafkascram.Mechanism(kafkascram.SHA512, user, password)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func kafkaGoRoundTrip(t *testing.T, b *secBroker, addr string, tlsCfg *tls.Config, mech kafkasasl.Mechanism) {
	t.Helper()
	topic := topicName(t, "t")
	createTopic(t, b.Broker, topic, 1, nil)  // over PLAINTEXT
	rs := secSample(topic, "kafkago", false) // kafka-go writes no null header values
	w := &kafka.Writer{
		Addr: kafka.TCP(addr), Topic: topic,
		Balancer:     kafka.BalancerFunc(func(_ kafka.Message, ps ...int) int { return 0 }),
		BatchTimeout: 10 * time.Millisecond, BatchSize: 1000, RequiredAcks: kafka.RequireAll,
		Transport: &kafka.Transport{TLS: tlsCfg, SASL: mech, MetadataTTL: time.Second},
	}
	defer w.Close()
	kafkaGoWrite(t, w, rs)
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: []string{addr}, Topic: topic, Partition: 0,
		MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 200 * time.Millisecond,
		Dialer: &kafka.Dialer{Timeout: 10 * time.Second, TLS: tlsCfg, SASLMechanism: mech},
	})
	defer r.Close()
	ctx := testCtx(t, 20*time.Second)
	var got []rec
	for len(got) < len(rs) {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("ReadMessage over %s after %d of %d: %v", addr, len(got), len(rs), err)
		}
		got = append(got, fromKafkaGo(m))
	}
	// the Reader returns nil for empty keys, values and header values (nilEmpty)
	assertRecs(t, "consumed over "+addr, nilEmpty(rs), got)
}

// TestSecurityKafkaGo: kafka-go (Writer with a Transport, Reader with a Dialer) over SASL_SSL
// with SCRAM-SHA-512 and over SSL; PLAIN over SASL_PLAINTEXT; a wrong password.
func TestSecurityKafkaGo(t *testing.T) {
	b := startSecBroker(t, "")
	tlsCfg := b.pki.tlsConfig()
	t.Run("SASL_SSL_SCRAM-SHA-512", func(t *testing.T) {
		kafkaGoRoundTrip(t, b, b.saslSSL, tlsCfg, kafkaGoSCRAM512(t, secUser, secPassword))
	})
	t.Run("SSL", func(t *testing.T) {
		kafkaGoRoundTrip(t, b, b.ssl, tlsCfg, nil)
	})
	t.Run("SASL_PLAINTEXT_PLAIN", func(t *testing.T) {
		kafkaGoRoundTrip(t, b, b.saslPlaintext, nil, kafkaplain.Mechanism{Username: secUser, Password: secPassword})
	})
	t.Run("wrong_password", func(t *testing.T) {
		d := &kafka.Dialer{Timeout: 10 * time.Second, TLS: tlsCfg, SASLMechanism: kafkaGoSCRAM512(t, secUser, "wrong")}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		conn, err := d.DialContext(ctx, "tcp", b.saslSSL)
		if err == nil {
			conn.Close()
			t.Fatal("dial with a wrong password succeeded")
		}
		if !errors.Is(err, kafka.SASLAuthenticationFailed) {
			t.Fatalf("want SASL_AUTHENTICATION_FAILED, got %v", err)
		}
	})
}
