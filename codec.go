package gossip

import (
	"bufio"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"time"

	"github.com/sirupsen/logrus"
)

// The codecs: net/rpc's gob encoding, with a bound on every message's size,
// deadlines on every read and write, and a bound on the requests one
// connection has in flight.

// ErrMessageTooLarge is the reason a connection that sent a gob message over
// Config.MaxMessageSize was closed.
var ErrMessageTooLarge = errors.New("gossip: message too large")

// frameReader passes a gob stream through, checking the length that
// prefixes each gob message against a limit before gob reads the message.
type frameReader struct {
	r    *bufio.Reader
	max  uint64
	left int // bytes of the current message, its length prefix included, not yet read
}

func newFrameReader(r io.Reader, max int) *frameReader {
	return &frameReader{r: bufio.NewReader(r), max: uint64(max)}
}

func (f *frameReader) Read(p []byte) (int, error) {
	if f.left == 0 {
		// A gob message starts with its length: one byte below 0x80, or
		// a byte holding minus the count of big-endian bytes that follow.
		b, err := f.r.Peek(1)
		if err != nil {
			return 0, err
		}
		n, hdr := uint64(b[0]), 1
		if b[0] >= 0x80 {
			k := -int(int8(b[0]))
			if k < 1 || k > 8 {
				return 0, fmt.Errorf("gossip: malformed gob message length")
			}
			hdr += k
			bs, err := f.r.Peek(hdr)
			if err != nil {
				return 0, err
			}
			n = 0
			for _, c := range bs[1:] {
				n = n<<8 | uint64(c)
			}
		}
		if n > f.max {
			return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, n, f.max)
		}
		f.left = hdr + int(n)
	}
	if len(p) > f.left {
		p = p[:f.left]
	}
	n, err := f.r.Read(p)
	f.left -= n
	return n, err
}

// serverCodec is net/rpc's gob server codec with deadlines, a message size
// limit, and a bound on requests in flight per connection.
type serverCodec struct {
	conn    net.Conn
	state   *inbound // requests under way, for connSet's eviction
	dec     *gob.Decoder
	enc     *gob.Encoder
	wbuf    *bufio.Writer
	cfg     *Config
	done    <-chan struct{}
	log     logrus.FieldLogger
	slots   chan struct{} // one per request being handled
	started bool          // a request has been read
	broken  bool          // the stream can no longer be trusted
}

// maxRequestsInFlight bounds the requests one connection has being handled.
const maxRequestsInFlight = 8

func newServerCodec(ctx context.Context, conn net.Conn, state *inbound, cfg *Config, log logrus.FieldLogger) *serverCodec {
	wbuf := bufio.NewWriter(conn)
	return &serverCodec{
		conn: conn, state: state, cfg: cfg, done: ctx.Done(), log: log,
		dec:   gob.NewDecoder(newFrameReader(conn, cfg.MaxMessageSize)),
		enc:   gob.NewEncoder(wbuf),
		wbuf:  wbuf,
		slots: make(chan struct{}, maxRequestsInFlight),
	}
}

func (c *serverCodec) ReadRequestHeader(r *rpc.Request) error {
	if c.broken {
		return io.EOF
	}
	select {
	case c.slots <- struct{}{}:
	case <-c.done:
		return io.EOF
	}
	wait := c.cfg.IdleTimeout
	if !c.started {
		wait = c.cfg.RPCTimeout
	}
	c.conn.SetReadDeadline(time.Now().Add(wait))
	if err := c.dec.Decode(r); err != nil {
		<-c.slots
		return c.fail("request header", err)
	}
	c.started = true
	c.state.begin() // net/rpc answers every request whose header it read
	return nil
}

func (c *serverCodec) ReadRequestBody(body any) error {
	c.conn.SetReadDeadline(time.Now().Add(c.cfg.RPCTimeout))
	if err := c.dec.Decode(body); err != nil {
		c.broken = true
		return c.fail("request body", err)
	}
	return nil
}

// fail logs why the connection is being dropped and returns err.
func (c *serverCodec) fail(what string, err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	case errors.As(err, &ne) && ne.Timeout():
		c.log.WithError(err).Debugf("gossip: connection timed out reading %s; closing it", what)
	default:
		c.log.WithError(err).Warnf("gossip: bad %s; closing the connection", what)
	}
	return err
}

func (c *serverCodec) WriteResponse(r *rpc.Response, body any) error {
	defer func() { <-c.slots }()
	defer c.state.end()
	c.conn.SetWriteDeadline(time.Now().Add(c.cfg.RPCTimeout))
	err := c.enc.Encode(r)
	if err == nil {
		err = c.enc.Encode(body)
	}
	if err == nil {
		err = c.wbuf.Flush()
	}
	if err != nil {
		c.log.WithError(err).Debug("gossip: writing response failed; closing the connection")
		c.conn.Close()
	}
	return err
}

func (c *serverCodec) Close() error { return c.conn.Close() }

// clientCodec is net/rpc's gob client codec with write deadlines and a
// message size limit. Calls are timed out by clientPool.call. net/rpc reads
// answers in a goroutine of its own, always waiting on the connection, so
// the codec learns at once when the peer ends the connection: it then calls
// ended, if set (see clientPool.ended).
type clientCodec struct {
	conn    net.Conn
	dec     *gob.Decoder
	enc     *gob.Encoder
	wbuf    *bufio.Writer
	timeout time.Duration
	ended   func()
}

func newClientCodec(conn net.Conn, cfg *Config, ended func()) *clientCodec {
	wbuf := bufio.NewWriter(conn)
	return &clientCodec{
		conn: conn, timeout: cfg.RPCTimeout, wbuf: wbuf, ended: ended,
		dec: gob.NewDecoder(newFrameReader(conn, cfg.MaxMessageSize)),
		enc: gob.NewEncoder(wbuf),
	}
}

func (c *clientCodec) WriteRequest(r *rpc.Request, body any) error {
	c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
	if err := c.enc.Encode(r); err != nil {
		return err
	}
	if err := c.enc.Encode(body); err != nil {
		return err
	}
	return c.wbuf.Flush()
}

// ReadResponseHeader waits for the next answer. An error other than the
// connection being closed on this side means that the peer ended it (or
// sent garbage), which is reported through ended. net/rpc's reader calls
// it no more after an error.
func (c *clientCodec) ReadResponseHeader(r *rpc.Response) error {
	err := c.dec.Decode(r)
	if err != nil && !errors.Is(err, net.ErrClosed) && c.ended != nil {
		c.ended()
	}
	return err
}

func (c *clientCodec) ReadResponseBody(body any) error { return c.dec.Decode(body) }
func (c *clientCodec) Close() error                    { return c.conn.Close() }
