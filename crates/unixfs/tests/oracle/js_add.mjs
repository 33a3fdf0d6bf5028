// Ask js-ipfs's importer (ipfs-unixfs-importer 12, the version js-ipfs 0.66.1 / ipfs-core
// 0.18 uses) what `jsipfs add --only-hash` gives, with js-ipfs's own option handling
// reproduced: its chunker-string parser, CIDv1 for non-sha2-256 hashes, raw leaves for
// CIDv1 or an explicit hash unless set, and trickle as a raw-typed-leaf, never-reduced DAG.
//
// usage: node js_add.mjs <job.json>
//   job: {"cases": [{"id", "options": {cidVersion, rawLeaves, chunker, trickle,
//          wrapWithDirectory, hashAlg}, "entries": [{"path", "file"} | {"path", "dir": true}]}]}
// prints one JSON line per case: {"id", "entries": [{"path", "cid", "size"}]} or {"id", "error"}.
//
// It must run from the directory holding node_modules (the test copies it there).

import { readFileSync, createReadStream } from 'node:fs'
import { importer } from 'ipfs-unixfs-importer'
import { sha256, sha512 } from 'multiformats/hashes/sha2'
import { base32 } from 'multiformats/bases/base32'

function parseChunker (chunker) {
  if (!chunker) return { chunker: 'fixed' }
  if (chunker.startsWith('size-')) {
    const size = parseInt(chunker.split('-')[1])
    if (isNaN(size)) throw new Error('Chunker parameter size must be an integer')
    return { chunker: 'fixed', maxChunkSize: size }
  }
  if (chunker.startsWith('rabin')) {
    const parts = chunker.split('-')
    const num = (s) => {
      const n = parseInt(s)
      if (isNaN(n)) throw new Error('rabin parameter must be an integer')
      return n
    }
    switch (parts.length) {
      case 1: return { chunker: 'rabin', avgChunkSize: 262144 }
      case 2: return { chunker: 'rabin', avgChunkSize: num(parts[1]) }
      case 4: return { chunker: 'rabin', minChunkSize: num(parts[1]), avgChunkSize: num(parts[2]), maxChunkSize: num(parts[3]) }
      default: throw new Error('bad rabin chunker')
    }
  }
  throw new Error(`Unrecognized chunker option: ${chunker}`)
}

const hashers = { 'sha2-256': sha256, 'sha2-512': sha512 }

function importerOptions (o) {
  const opts = { shardSplitThreshold: Infinity, strategy: 'balanced', ...o, ...parseChunker(o.chunker) }
  if (opts.hashAlg && opts.hashAlg !== 'sha2-256' && opts.cidVersion !== 1) opts.cidVersion = 1
  if (opts.trickle) opts.strategy = 'trickle'
  if (opts.strategy === 'trickle') {
    opts.leafType = 'raw'
    opts.reduceSingleLeafToSelf = false
  }
  if (opts.cidVersion > 0 && opts.rawLeaves === undefined) opts.rawLeaves = true
  if (opts.hashAlg !== undefined && opts.rawLeaves === undefined) opts.rawLeaves = true
  delete opts.trickle
  if (opts.hashAlg !== undefined) {
    opts.hasher = hashers[opts.hashAlg]
    if (!opts.hasher) throw new Error(`no hasher for ${opts.hashAlg}`)
  }
  delete opts.hashAlg
  opts.onlyHash = true
  return opts
}

// Nothing is stored: onlyHash skips put, and nothing is ever read back.
const blockstore = {
  put: async (cid) => cid,
  has: async () => false,
  get: async () => { throw new Error('only-hash oracle stores nothing') }
}

async function runCase (c) {
  const opts = importerOptions(c.options || {})
  const source = c.entries.map(e => e.dir
    ? { path: e.path }
    : { path: e.path, content: createReadStream(e.file, { highWaterMark: 1 << 20 }) })
  const out = []
  for await (const r of importer(source, blockstore, opts)) {
    const cid = r.cid.version === 0 ? r.cid.toString() : r.cid.toString(base32)
    out.push({ path: r.path ?? '', cid, size: Number(r.size) })
  }
  return out
}

const job = JSON.parse(readFileSync(process.argv[2], 'utf8'))
for (const c of job.cases) {
  try {
    console.log(JSON.stringify({ id: c.id, entries: await runCase(c) }))
  } catch (e) {
    console.log(JSON.stringify({ id: c.id, error: String(e && e.stack || e) }))
  }
}
