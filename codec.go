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
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// The codecs: net/rpc's gob encoding, with a bound on every message's size,
// deadlines on every read and write, and a bound on the requests one
// connection has in flight. Between members they pack the digests of
// Gossip.Exchange (see compact.go).

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

// readBufSize is the read buffer of a connection: enough for the header
// and body of a steady exchange's request or response (packed), so that
// one read usually brings a whole message; larger messages are read past
// it. Every connection holds one all its life, so it is kept small.
const readBufSize = 512

func newFrameReader(r io.Reader, max int) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, readBufSize), max: uint64(max)}
}

// ReadByte makes frameReader an io.ByteReader, which gob takes as a sign
// that it buffers, so that gob does not add a buffer of its own.
func (f *frameReader) ReadByte() (byte, error) {
	var b [1]byte
	_, err := io.ReadFull(f, b[:])
	return b[0], err
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

// connWriter buffers what one call of a codec writes (a header and a body,
// each one Write from gob) so that it goes out in one write, in a buffer
// taken from writeBufs for that call only: an idle connection holds none,
// as net/http's server does with its bufio.Writers. It is not safe for
// concurrent use; a codec writes under a lock.
type connWriter struct {
	conn net.Conn
	buf  *bufio.Writer
}

// writeBufs holds the write buffers not in use, shared by all connections.
var writeBufs = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}

func (w *connWriter) Write(p []byte) (int, error) {
	if w.buf == nil {
		w.buf = writeBufs.Get().(*bufio.Writer)
		w.buf.Reset(w.conn)
	}
	return w.buf.Write(p)
}

// Flush writes what is buffered and gives the buffer back.
func (w *connWriter) Flush() error {
	if w.buf == nil {
		return nil
	}
	err := w.buf.Flush()
	w.buf.Reset(nil)
	writeBufs.Put(w.buf)
	w.buf = nil
	return err
}

// serverCodec is net/rpc's gob server codec with deadlines, a message size
// limit, and a bound on requests in flight per connection.
type serverCodec struct {
	conn    net.Conn
	state   *inbound // requests under way, for connSet's eviction
	dec     *gob.Decoder
	enc     *gob.Encoder
	wbuf    *connWriter
	cfg     *Config
	done    <-chan struct{}
	log     logrus.FieldLogger
	slots   chan struct{} // one per request being handled
	started bool          // a request has been read
	broken  bool          // the stream can no longer be trusted
	dead    bool          // a read failed: the connection is done
	method  string        // of the request whose header was read last

	// Packing (compact.go). The reader owns in; the writer (net/rpc writes
	// under a lock of its own) owns pack, buf and sentFrom.
	packs    atomic.Bool // the client has sent a packed request
	in       inflow
	pack     *packer
	buf      []byte // the latest packed digest, reused
	sentFrom bool   // a packed response carried From and Cluster
}

// maxRequestsInFlight bounds the requests one connection has being handled,
// for a codec served by net/rpc's ServeCodec; a member's serveConn handles
// one at a time.
const maxRequestsInFlight = 8

func newServerCodec(ctx context.Context, conn net.Conn, state *inbound, cfg *Config, log logrus.FieldLogger) *serverCodec {
	wbuf := &connWriter{conn: conn}
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
		c.dead = true
		return io.EOF
	}
	select {
	case c.slots <- struct{}{}:
	case <-c.done:
		c.dead = true
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
	if r.ServiceMethod == "" && c.packs.Load() {
		r.ServiceMethod = c.method // a packing client's repeated method
	}
	c.method = r.ServiceMethod
	c.state.begin() // net/rpc answers every request whose header it read
	return nil
}

func (c *serverCodec) ReadRequestBody(body any) error {
	c.conn.SetReadDeadline(time.Now().Add(c.cfg.RPCTimeout))
	if err := c.dec.Decode(body); err != nil {
		c.broken = true
		return c.fail("request body", err)
	}
	req, ok := body.(*ExchangeRequest)
	if !ok {
		if body == nil && c.method == exchangeMethod && c.packs.Load() {
			// A packed digest may have gone unread: the dictionary
			// can no longer be trusted.
			c.broken = true
		}
		return nil
	}
	if err := c.unpackRequest(req); err != nil {
		c.broken = true
		return c.fail("request body", err)
	}
	return nil
}

// exchangeMethod is the RPC whose messages carry digests.
const exchangeMethod = serviceName + ".Exchange"

// unpackRequest turns a packed request back into the protocol's form: the
// client then reads packed answers.
func (c *serverCodec) unpackRequest(req *ExchangeRequest) error {
	packed, err := c.in.take(c.cfg.MaxMembers, &req.Packed, &req.Digest, &req.From, &req.Cluster)
	if packed {
		c.packs.Store(true)
	}
	return err
}

// inflow is what one direction of a connection has received that later
// messages lean on: the dictionary of its packed digests, and the From and
// Cluster that packed messages leave out when they repeat.
type inflow struct {
	unpack  *unpacker
	from    string // From and Cluster of the latest message that carried them
	cluster string
}

// take turns a received message, whose fields are given, back into the
// protocol's form: it unpacks a packed digest into digest (a dictionary of
// at most max addresses) and fills in a From and Cluster left out. It
// reports whether the message was packed.
func (in *inflow) take(max int, packed, digest *[]byte, from, cluster *string) (bool, error) {
	if len(*packed) == 0 {
		if *from != "" {
			in.from, in.cluster = *from, *cluster
		}
		return false, nil
	}
	if in.unpack == nil {
		in.unpack = newUnpacker(max)
	}
	d, err := in.unpack.unpack(*packed)
	if err != nil {
		return true, err
	}
	*digest, *packed = d, nil
	if *from == "" {
		*from, *cluster = in.from, in.cluster
	} else {
		in.from, in.cluster = *from, *cluster
	}
	return true, nil
}

// packResponse returns body to write: a packed copy of an ExchangeResponse
// if the client reads them.
func (c *serverCodec) packResponse(body any) (any, error) {
	resp, ok := body.(*ExchangeResponse)
	if !ok || !c.packs.Load() {
		return body, nil
	}
	if c.pack == nil {
		c.pack = newPacker(c.cfg.MaxMembers)
	}
	out := *resp
	var err error
	if c.buf, err = c.pack.pack(c.buf[:0], resp.Digest); err != nil {
		return nil, err
	}
	out.Digest, out.Packed = nil, c.buf
	if c.sentFrom {
		out.From, out.Cluster = "", ""
	}
	c.sentFrom = true
	return &out, nil
}

// fail logs why the connection is being dropped and returns err.
func (c *serverCodec) fail(what string, err error) error {
	c.dead = true
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
	body, err := c.packResponse(body)
	if err == nil && c.packs.Load() {
		// net/rpc's client reads only Seq and Error.
		hdr := *r
		hdr.ServiceMethod = ""
		r = &hdr
	}
	if err == nil {
		err = c.enc.Encode(r)
	}
	if err == nil {
		err = c.enc.Encode(body)
	}
	if ferr := c.wbuf.Flush(); err == nil {
		err = ferr
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
	conn       net.Conn
	dec        *gob.Decoder
	enc        *gob.Encoder
	wbuf       *connWriter
	timeout    time.Duration
	maxMembers int
	ended      func()

	// Packing (compact.go). net/rpc writes under a lock of its own, which
	// guards pack, buf and method; its reader goroutine owns in and
	// header.
	packs  atomic.Bool // the server has answered packed
	plain  atomic.Bool // the server has answered plain: it reads no packed requests
	pack   *packer
	buf    []byte       // the latest packed digest, reused
	method string       // of the latest request
	in     inflow       // what the responses read so far leave to later ones
	header rpc.Response // the latest response header read

	hmu   sync.Mutex           // protects hooks and over
	hooks map[uint64]*callHook // of the calls started by clientPool.start, by Seq
	over  bool                 // reading has ended: no hook would be called
}

// hookedArgs are the args of a call started by clientPool.start: the
// request, and the hook that ends the call.
type hookedArgs struct {
	args any
	hook *callHook
}

// callHook ends a call started by clientPool.start exactly once, with the
// first of its answer read (from net/rpc's reader goroutine), its timeout,
// and the end of its connection.
type callHook struct {
	done    atomic.Bool
	written bool // set by WriteRequest, in the goroutine that called Go
	end     func(err error)
}

// finish ends the call with err, unless it has ended already.
func (h *callHook) finish(err error) {
	if h.done.CompareAndSwap(false, true) {
		h.end(err)
	}
}

// addHook registers the hook of call seq. It returns false if reading has
// ended: net/rpc's reader may end and still take a call for a moment, and
// the hook of that call would never be called.
func (c *clientCodec) addHook(seq uint64, h *callHook) bool {
	c.hmu.Lock()
	defer c.hmu.Unlock()
	if c.over {
		return false
	}
	if c.hooks == nil {
		c.hooks = make(map[uint64]*callHook)
	}
	c.hooks[seq] = h
	return true
}

// takeHook removes and returns the hook of call seq, or nil if it has none.
func (c *clientCodec) takeHook(seq uint64) *callHook {
	c.hmu.Lock()
	defer c.hmu.Unlock()
	h := c.hooks[seq]
	delete(c.hooks, seq)
	return h
}

// endHooks ends every hooked call with err: the connection is done.
func (c *clientCodec) endHooks(err error) {
	c.hmu.Lock()
	hooks := c.hooks
	c.hooks, c.over = nil, true
	c.hmu.Unlock()
	for _, h := range hooks {
		h.finish(err)
	}
}

func newClientCodec(conn net.Conn, cfg *Config, ended func()) *clientCodec {
	wbuf := &connWriter{conn: conn}
	return &clientCodec{
		conn: conn, timeout: cfg.RPCTimeout, maxMembers: cfg.MaxMembers, wbuf: wbuf, ended: ended,
		dec: gob.NewDecoder(newFrameReader(conn, cfg.MaxMessageSize)),
		enc: gob.NewEncoder(wbuf),
	}
}

// WriteRequest writes a request. A request that could not be written
// whole leaves the stream, and the dictionary of packed digests, in an
// unknown state, so the connection is closed.
//
// The hook of a call started by clientPool.start is registered before the
// request is written, as its answer may be read before the write returns,
// and is taken back if the write fails. Once reading has ended, such a call
// is refused unwritten.
func (c *clientCodec) WriteRequest(r *rpc.Request, body any) error {
	var hook *callHook
	if h, ok := body.(*hookedArgs); ok {
		body, hook = h.args, h.hook
		if !c.addHook(r.Seq, hook) {
			return fmt.Errorf("gossip: %w", net.ErrClosed)
		}
	}
	c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
	body, err := c.packRequest(body)
	if err == nil {
		hdr := *r
		if c.packs.Load() && r.ServiceMethod == c.method {
			hdr.ServiceMethod = "" // the server repeats it
		}
		c.method = r.ServiceMethod
		err = c.enc.Encode(&hdr)
	}
	if err == nil {
		err = c.enc.Encode(body)
	}
	if ferr := c.wbuf.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		c.conn.Close()
		if hook != nil {
			c.takeHook(r.Seq)
		}
	} else if hook != nil {
		hook.written = true
	}
	return err
}

// packRequest returns the body to write: for an ExchangeRequest, a packed
// copy, unless the server has shown that it does not read them.
func (c *clientCodec) packRequest(body any) (any, error) {
	var req ExchangeRequest
	switch b := body.(type) {
	case ExchangeRequest:
		req = b
	case *ExchangeRequest:
		req = *b
	default:
		return body, nil
	}
	if c.plain.Load() {
		return body, nil
	}
	if c.pack == nil {
		c.pack = newPacker(c.maxMembers)
	}
	var err error
	if c.buf, err = c.pack.pack(c.buf[:0], req.Digest); err != nil {
		return nil, err
	}
	req.Digest, req.Packed = nil, c.buf
	if c.packs.Load() {
		// The server has answered a packed request, which carried
		// From and Cluster: it repeats them. Until then it may be a
		// member built before packing, which needs them.
		req.From, req.Cluster = "", ""
	}
	return &req, nil
}

// ReadResponseHeader waits for the next answer. An error other than the
// connection being closed on this side means that the peer ended it (or
// sent garbage), which is reported through ended. net/rpc's reader calls
// it no more after an error, so the hooked calls end with it.
func (c *clientCodec) ReadResponseHeader(r *rpc.Response) error {
	err := c.dec.Decode(r)
	if err != nil {
		if !errors.Is(err, net.ErrClosed) && c.ended != nil {
			c.ended()
		}
		c.endHooks(err)
	}
	c.header = *r
	return err
}

// ReadResponseBody reads a response's body into body, unpacking an
// ExchangeResponse. If the body cannot be read or unpacked, the stream
// and its dictionary can no longer be trusted: the connection is closed,
// which ends net/rpc's reader. A call started by clientPool.start then
// ends through its hook, here, in net/rpc's reader goroutine.
func (c *clientCodec) ReadResponseBody(body any) error {
	err := c.dec.Decode(body)
	if err == nil {
		if resp, ok := body.(*ExchangeResponse); ok {
			err = c.unpackResponse(resp)
		} else if body == nil && c.header.Error == "" && !c.plain.Load() {
			// An answer to a call no longer waiting (net/rpc drops a
			// call whose request it failed to write): a packed digest
			// may have gone unread.
			err = errors.New("gossip: answer to no call")
		}
	}
	if err != nil {
		c.conn.Close()
	}
	if hook := c.takeHook(c.header.Seq); hook != nil {
		if err == nil && c.header.Error != "" {
			err = rpc.ServerError(c.header.Error)
		}
		hook.finish(err)
	}
	return err
}

// unpackResponse turns a packed response back into the protocol's form. A
// plain one tells that the server reads no packed requests (see
// internal/protocol's message.go).
func (c *clientCodec) unpackResponse(resp *ExchangeResponse) error {
	packed, err := c.in.take(c.maxMembers, &resp.Packed, &resp.Digest, &resp.From, &resp.Cluster)
	if packed {
		c.packs.Store(true)
	} else {
		c.plain.Store(true)
	}
	return err
}

func (c *clientCodec) Close() error { return c.conn.Close() }
