/*-------------------------------------------------------------------------
 *
 * zenith_walredo.c
 *	  Applies WAL records to one page with PostgreSQL's own redo routines.
 *
 * Loaded into a single-user backend (postgres --single) on a scratch cluster
 * that belongs to this process alone.  The SQL function zenith_walredo_loop()
 * takes over the backend's stdin and stdout and serves binary requests until
 * end of input: each request names a target block, optionally gives its base
 * image, and lists WAL records with their start and end LSNs; the answer is
 * the 8 KiB page after redo, or an error message.  The byte layout is in
 * docs/formats/walredo-protocol.md.
 *
 * There is no storage logic here.  Which records to apply, in which order,
 * from which base image, and what to do with the visibility-map bits that
 * heap records clear implicitly is the caller's business.  This file only
 * checks its input and drives the resource managers on one block:
 *
 * - every record is CRC-checked, its lengths and LSNs checked and its body
 *   decoded before anything is touched; a bad request is rejected and the
 *   process stays as it was;
 * - the relations a request touches are mapped to a private namespace of
 *   database OIDs that the scratch cluster never uses, so a compute's catalog
 *   (base/5/1259 is pg_class in both clusters) never collides with the
 *   scratch backend's own files;
 * - every referenced fork is created and sized with one sparse smgrextend, the
 *   base image is placed with RBM_ZERO_AND_LOCK, and each record goes through
 *   its rm_redo;
 * - before a record is applied, every block it references other than the
 *   target is overwritten with an empty page whose LSN lies beyond any real
 *   WAL position, so redo finds it "already newer than this record" (BLK_DONE)
 *   and leaves it alone, exactly as crash recovery treats a page that reached
 *   disk before the crash.  A full-page image of such a block is still
 *   restored, and forgotten again before the next record.  Leaving those
 *   blocks absent instead (BLK_NOTFOUND) is not enough: BRIN insert redo takes
 *   the block number of its regular page's buffer even when it is invalid,
 *   and a block restored from an image by one record would otherwise meet a
 *   later record without its history (hash redo PANICs);
 * - afterwards the touched relations are unlinked with their buffers dropped
 *   unwritten: those buffers carry LSNs of another cluster.
 *
 * An ERROR raised inside redo is caught: each request runs in an internal
 * subtransaction, whose rollback releases buffer pins, content locks and the
 * relation extension lock exactly as an exception block in PL/pgSQL does.  The
 * error is answered and the process serves the next request.  A PANIC (redo
 * found the page inconsistent with the record) ends the process; the caller
 * starts a new one.
 *
 * The returned page is the buffer's content: pd_lsn is the end LSN of the
 * last record that changed it, pd_checksum is whatever the base image or full
 * page image carried and must be recomputed by the caller when checksums are
 * on.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>

#include "access/rmgr.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogreader.h"
#include "access/xlogrecord.h"
#include "access/xlogutils.h"
#include "catalog/pg_control.h"
#include "catalog/pg_tablespace_d.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "port/pg_crc32c.h"
#include "storage/bufmgr.h"
#include "storage/bufpage.h"
#include "storage/smgr.h"
#include "utils/elog.h"
#include "utils/inval.h"
#include "utils/memutils.h"

PG_MODULE_MAGIC;

/* Protocol constants; see docs/formats/walredo-protocol.md. */
#define ZWR_PROTOCOL_VERSION	1
#define ZWR_MSG_REDO			'R'
#define ZWR_MSG_EXIT			'X'
#define ZWR_REPLY_PAGE			'P'
#define ZWR_REPLY_ERROR			'E'
#define ZWR_ERROR_REJECTED		1	/* input refused; nothing was applied */
#define ZWR_ERROR_REDO			2	/* ERROR raised during redo; process goes on */
#define ZWR_ERROR_FATAL			3	/* the process exits after this reply */
#define ZWR_FLAG_BASE_IMAGE		0x01
#define ZWR_FLAG_DATA_CHECKSUMS 0x0001
#define ZWR_FLAG_WAL_LOG_HINTS	0x0002
#define ZWR_MAX_BODY			(512 * 1024 * 1024)
#define ZWR_REQUEST_HEADER_SIZE 24	/* target (20) + nrecords (4) */
#define ZWR_RECORD_HEADER_SIZE	20	/* start (8) + end (8) + length (4) */
#define ZWR_MAX_SPACES			1024

/*
 * Database OIDs of the private namespace: the i-th distinct (tablespace,
 * database) pair of a request becomes (pg_default, ZWR_DB_OID_BASE + i).  The
 * scratch cluster's own database is 5 ("postgres"; the templates are dropped).
 */
#define ZWR_DB_OID_BASE			((Oid) 0xF0000000)

/*
 * Page LSN of the stand-in pages for non-target blocks: just below the scratch
 * cluster's own WAL position (pg_resetwal -l puts it at FFFF0000/0), so above
 * every record we accept and still "flushed" if the buffer is ever written.
 */
#define ZWR_FUTURE_LSN			((XLogRecPtr) UINT64CONST(0xFFFF000000000000) - 1)

static const char zwr_magic[8] = {'\x89', 'Z', 'W', 'R', 'E', 'D', 'O', '\n'};

PG_FUNCTION_INFO_V1(zenith_walredo_loop);

/* One record of a request: where its bytes are in the request body. */
typedef struct ZwrRecord
{
	XLogRecPtr	start;
	XLogRecPtr	end;
	const char *bytes;
	uint32		len;
} ZwrRecord;

/* The highest block of a fork that some record references. */
typedef struct ZwrExtent
{
	RelFileNode rnode;
	ForkNumber	fork;
	BlockNumber maxblk;
} ZwrExtent;

typedef struct ZwrRequest
{
	RelFileNode target;			/* mapped */
	ForkNumber	fork;
	BlockNumber blkno;
	const char *base;			/* NULL: start from a zero page */
	int			nrecords;
	ZwrRecord  *records;
	uint32		maxlen;			/* longest record */

	/* (spcOid, dbOid) pairs in order of appearance; index = mapped db */
	int			nspaces;
	Oid			spaces[ZWR_MAX_SPACES][2];

	int			nextents;
	int			extents_cap;
	ZwrExtent  *extents;

	int			nrels;
	int			rels_cap;
	RelFileNode *rels;

	/* work areas, MAXALIGNed, sized for the longest record */
	char	   *recbuf;
	DecodedXLogRecord *decoded;
} ZwrRequest;

/* Context for error messages raised inside rm_redo. */
typedef struct ZwrRedoContext
{
	int			index;
	XLogRecPtr	lsn;
	RmgrId		rmid;
	uint8		info;
} ZwrRedoContext;

static bool loop_started = false;
static XLogReaderState *reader = NULL;
static MemoryContext request_cxt = NULL;
static PGAlignedBlock zero_page;

/* ---- stdin / stdout ---------------------------------------------------- */

/*
 * Reads exactly n bytes from stdin.  The backend has read the SQL line that
 * called us with getc(stdin); bytes after it may already sit in stdio's
 * buffer, so stdin must only be read through stdio.
 */
static bool
read_exact(void *buf, size_t n)
{
	return n == 0 || fread(buf, 1, n, stdin) == n;
}

static void
write_exact(const void *buf, size_t n)
{
	if (fwrite(buf, 1, n, stdout) != n)
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("zenith_walredo: could not write to stdout: %m")));
}

static void
flush_stdout(void)
{
	if (fflush(stdout) != 0)
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("zenith_walredo: could not write to stdout: %m")));
}

static void
put_u16(char *p, uint16 v)
{
	p[0] = (char) (v & 0xFF);
	p[1] = (char) (v >> 8);
}

static void
put_u32(char *p, uint32 v)
{
	p[0] = (char) (v & 0xFF);
	p[1] = (char) ((v >> 8) & 0xFF);
	p[2] = (char) ((v >> 16) & 0xFF);
	p[3] = (char) (v >> 24);
}

static uint32
get_u32(const char *p)
{
	const unsigned char *u = (const unsigned char *) p;

	return (uint32) u[0] | ((uint32) u[1] << 8) | ((uint32) u[2] << 16) |
		((uint32) u[3] << 24);
}

static uint64
get_u64(const char *p)
{
	return (uint64) get_u32(p) | ((uint64) get_u32(p + 4) << 32);
}

static void
send_handshake(void)
{
	char		buf[28];
	uint16		flags = 0;

	if (DataChecksumsEnabled())
		flags |= ZWR_FLAG_DATA_CHECKSUMS;
	if (wal_log_hints)
		flags |= ZWR_FLAG_WAL_LOG_HINTS;
	memcpy(buf, zwr_magic, sizeof(zwr_magic));
	put_u16(buf + 8, ZWR_PROTOCOL_VERSION);
	put_u16(buf + 10, flags);
	put_u32(buf + 12, PG_VERSION_NUM);
	put_u32(buf + 16, BLCKSZ);
	put_u32(buf + 20, XLOG_PAGE_MAGIC);
	put_u32(buf + 24, (uint32) MyProcPid);
	write_exact(buf, sizeof(buf));
	flush_stdout();
}

static void
send_page(const char *page)
{
	char		status = ZWR_REPLY_PAGE;

	write_exact(&status, 1);
	write_exact(page, BLCKSZ);
	flush_stdout();
}

static void
send_error(uint8 kind, const char *msg)
{
	char		head[6];
	size_t		len = strlen(msg);

	if (len > 65536)
		len = 65536;
	head[0] = ZWR_REPLY_ERROR;
	head[1] = (char) kind;
	put_u32(head + 2, (uint32) len);
	write_exact(head, sizeof(head));
	write_exact(msg, len);
	flush_stdout();
}

/* Protocol framing is lost: answer once, then end the process. */
static void
fail_fatal(const char *msg)
{
	send_error(ZWR_ERROR_FATAL, msg);
	ereport(FATAL, (errmsg("zenith_walredo: %s", msg)));
}

/* ---- request parsing and validation ------------------------------------ */

static const char *
rmgr_name(RmgrId rmid)
{
	return RmgrIdExists(rmid) ? RmgrTable[rmid].rm_name : "unknown";
}

/*
 * Only resource managers whose redo changes nothing but the pages a record
 * references (plus, for heap records, that relation's visibility map and free
 * space map) may run here.  Of XLOG, only full-page images: checkpoints,
 * NEXTOID and the like change the scratch cluster's shared state.
 */
static bool
rmgr_allowed(RmgrId rmid, uint8 info)
{
	switch (rmid)
	{
		case RM_XLOG_ID:
			info &= ~XLR_INFO_MASK;
			return info == XLOG_FPI || info == XLOG_FPI_FOR_HINT;
		case RM_HEAP2_ID:
		case RM_HEAP_ID:
		case RM_BTREE_ID:
		case RM_HASH_ID:
		case RM_GIN_ID:
		case RM_GIST_ID:
		case RM_SEQ_ID:
		case RM_SPGIST_ID:
		case RM_BRIN_ID:
		case RM_GENERIC_ID:
			return true;
		default:
			return false;
	}
}

/* The database OID a (tablespace, database) pair maps to; -1 if unknown. */
static int
space_index(ZwrRequest *req, Oid spc, Oid db, bool add)
{
	int			i;

	for (i = 0; i < req->nspaces; i++)
		if (req->spaces[i][0] == spc && req->spaces[i][1] == db)
			return i;
	if (!add || req->nspaces >= ZWR_MAX_SPACES)
		return -1;
	req->spaces[req->nspaces][0] = spc;
	req->spaces[req->nspaces][1] = db;
	return req->nspaces++;
}

static bool
space_valid(Oid spc, Oid db)
{
	/* shared relations live in pg_global with database 0, and only there */
	if (spc == InvalidOid)
		return false;
	return (spc == GLOBALTABLESPACE_OID) == (db == InvalidOid);
}

static RelFileNode
mapped(int index, Oid rel)
{
	RelFileNode r;

	r.spcNode = DEFAULTTABLESPACE_OID;
	r.dbNode = ZWR_DB_OID_BASE + (Oid) index;
	r.relNode = rel;
	return r;
}

static void
note_extent(ZwrRequest *req, RelFileNode rnode, ForkNumber fork, BlockNumber blkno)
{
	int			i;

	for (i = 0; i < req->nextents; i++)
	{
		ZwrExtent  *e = &req->extents[i];

		if (RelFileNodeEquals(e->rnode, rnode) && e->fork == fork)
		{
			if (blkno > e->maxblk)
				e->maxblk = blkno;
			return;
		}
	}
	if (req->nextents == req->extents_cap)
	{
		req->extents_cap *= 2;
		req->extents = repalloc(req->extents, sizeof(ZwrExtent) * req->extents_cap);
	}
	req->extents[req->nextents].rnode = rnode;
	req->extents[req->nextents].fork = fork;
	req->extents[req->nextents].maxblk = blkno;
	req->nextents++;

	for (i = 0; i < req->nrels; i++)
		if (RelFileNodeEquals(req->rels[i], rnode))
			return;
	if (req->nrels == req->rels_cap)
	{
		req->rels_cap *= 2;
		req->rels = repalloc(req->rels, sizeof(RelFileNode) * req->rels_cap);
	}
	req->rels[req->nrels++] = rnode;
}

/*
 * Splits the request body into its fields, checking every length against the
 * bytes present.  Returns NULL or a message saying what is wrong.
 */
static char *
parse_request(char *body, uint32 len, ZwrRequest *req)
{
	uint32		pos;
	Oid			spc,
				db,
				rel;
	uint8		fork,
				flags;
	uint32		nrecords;
	uint32		i;
	int			index;

	if (len < ZWR_REQUEST_HEADER_SIZE)
		return psprintf("request body of %u bytes is shorter than its %d-byte header",
						len, ZWR_REQUEST_HEADER_SIZE);
	spc = get_u32(body);
	db = get_u32(body + 4);
	rel = get_u32(body + 8);
	fork = (uint8) body[12];
	flags = (uint8) body[13];
	/* body[14..15] reserved */
	req->blkno = get_u32(body + 16);
	nrecords = get_u32(body + 20);
	pos = ZWR_REQUEST_HEADER_SIZE;

	if (!space_valid(spc, db) || rel == InvalidOid)
		return psprintf("invalid target relation %u/%u/%u", spc, db, rel);
	if (fork > MAX_FORKNUM)
		return psprintf("invalid target fork %u", fork);
	if (req->blkno == InvalidBlockNumber)
		return psprintf("invalid target block %u", req->blkno);
	if ((flags & ~ZWR_FLAG_BASE_IMAGE) != 0 || body[14] != 0 || body[15] != 0)
		return psprintf("unknown request flags 0x%02X%02X%02X",
						flags, (uint8) body[14], (uint8) body[15]);
	req->fork = (ForkNumber) fork;
	index = space_index(req, spc, db, true);
	req->target = mapped(index, rel);
	note_extent(req, req->target, req->fork, req->blkno);

	req->base = NULL;
	if (flags & ZWR_FLAG_BASE_IMAGE)
	{
		if (len - pos < BLCKSZ)
			return psprintf("request body of %u bytes ends inside the base image", len);
		req->base = body + pos;
		pos += BLCKSZ;
	}

	if (nrecords > (len - pos) / (ZWR_RECORD_HEADER_SIZE + SizeOfXLogRecord))
		return psprintf("request declares %u records but has only %u bytes left",
						nrecords, len - pos);
	req->nrecords = (int) nrecords;
	req->records = palloc(sizeof(ZwrRecord) * Max(nrecords, 1));
	req->maxlen = 0;
	for (i = 0; i < nrecords; i++)
	{
		ZwrRecord  *r = &req->records[i];

		if (len - pos < ZWR_RECORD_HEADER_SIZE)
			return psprintf("request body ends inside the header of record %u", i);
		r->start = get_u64(body + pos);
		r->end = get_u64(body + pos + 8);
		r->len = get_u32(body + pos + 16);
		pos += ZWR_RECORD_HEADER_SIZE;
		if (r->len > len - pos)
			return psprintf("record %u at %X/%X declares %u bytes but only %u are left",
							i, LSN_FORMAT_ARGS(r->start), r->len, len - pos);
		r->bytes = body + pos;
		pos += r->len;
		if (r->len > req->maxlen)
			req->maxlen = r->len;
	}
	if (pos != len)
		return psprintf("request body has %u bytes after its last record", len - pos);
	return NULL;
}

/* Checks the base image's page header the way the buffer manager would. */
static char *
check_base_image(const char *base)
{
	PageHeaderData hdr;

	memcpy(&hdr, base, SizeOfPageHeaderData);
	if (hdr.pd_upper == 0)
	{
		int			i;

		for (i = 0; i < BLCKSZ; i++)
			if (base[i] != 0)
				return pstrdup("base image has pd_upper 0 but is not all zeros");
		return NULL;
	}
	if ((hdr.pd_flags & ~PD_VALID_FLAG_BITS) != 0 ||
		hdr.pd_lower < SizeOfPageHeaderData ||
		hdr.pd_lower > hdr.pd_upper ||
		hdr.pd_upper > hdr.pd_special ||
		hdr.pd_special > BLCKSZ ||
		hdr.pd_special != MAXALIGN(hdr.pd_special) ||
		(hdr.pd_pagesize_version & 0xFF00) != BLCKSZ ||
		(hdr.pd_pagesize_version & 0x00FF) != PG_PAGE_LAYOUT_VERSION)
		return psprintf("base image has an invalid page header "
						"(flags 0x%04X, lower %u, upper %u, special %u, size/version 0x%04X)",
						hdr.pd_flags, hdr.pd_lower, hdr.pd_upper, hdr.pd_special,
						hdr.pd_pagesize_version);
	return NULL;
}

/*
 * Copies record i to the aligned work buffer and decodes it.  With "check",
 * also verifies its LSNs, lengths, CRC and resource manager first.  Returns
 * NULL or a message.  On success req->decoded holds the record, its block
 * references already mapped to the private namespace.
 */
static char *
decode_record(ZwrRequest *req, int i, bool check)
{
	ZwrRecord  *r = &req->records[i];
	XLogRecord *hdr = (XLogRecord *) req->recbuf;
	DecodedXLogRecord *d = req->decoded;
	char	   *errormsg = NULL;
	int			b;
	int			nblocks = 0;

	memcpy(req->recbuf, r->bytes, r->len);
	if (check)
	{
		pg_crc32c	crc;

		if (r->start == InvalidXLogRecPtr || r->start % MAXIMUM_ALIGNOF != 0 ||
			!XRecOffIsValid(r->start))
			return psprintf("record %d: invalid start LSN %X/%X", i, LSN_FORMAT_ARGS(r->start));
		if (r->end % MAXIMUM_ALIGNOF != 0 || r->end <= r->start || r->end - r->start < r->len ||
			r->end > ZWR_FUTURE_LSN)
			return psprintf("record %d at %X/%X: invalid end LSN %X/%X for a %u-byte record",
							i, LSN_FORMAT_ARGS(r->start), LSN_FORMAT_ARGS(r->end), r->len);
		if (i > 0 && r->start < req->records[i - 1].end)
			return psprintf("record %d at %X/%X starts before the end %X/%X of the record before it",
							i, LSN_FORMAT_ARGS(r->start),
							LSN_FORMAT_ARGS(req->records[i - 1].end));
		if (r->len < SizeOfXLogRecord)
			return psprintf("record %d at %X/%X: %u bytes are shorter than a record header",
							i, LSN_FORMAT_ARGS(r->start), r->len);
		if (hdr->xl_tot_len != r->len)
			return psprintf("record %d at %X/%X: xl_tot_len %u differs from the %u bytes given",
							i, LSN_FORMAT_ARGS(r->start), hdr->xl_tot_len, r->len);
		INIT_CRC32C(crc);
		COMP_CRC32C(crc, req->recbuf + SizeOfXLogRecord, r->len - SizeOfXLogRecord);
		COMP_CRC32C(crc, req->recbuf, offsetof(XLogRecord, xl_crc));
		FIN_CRC32C(crc);
		if (!EQ_CRC32C(hdr->xl_crc, crc))
			return psprintf("record %d at %X/%X: incorrect resource manager data checksum "
							"(expected %08X, computed %08X)",
							i, LSN_FORMAT_ARGS(r->start), hdr->xl_crc, crc);
		if (!RmgrIdExists(hdr->xl_rmid) || !rmgr_allowed(hdr->xl_rmid, hdr->xl_info))
			return psprintf("record %d at %X/%X: %s record (rmid %u, info 0x%02X) cannot be "
							"applied to a page",
							i, LSN_FORMAT_ARGS(r->start), rmgr_name(hdr->xl_rmid),
							hdr->xl_rmid, hdr->xl_info);
	}

	reader->ReadRecPtr = r->start;
	reader->EndRecPtr = r->end;
	d->oversized = false;
	if (!DecodeXLogRecord(reader, d, hdr, r->start, &errormsg))
		return psprintf("record %d at %X/%X: %s", i, LSN_FORMAT_ARGS(r->start),
						errormsg ? errormsg : "cannot be decoded");
	d->next_lsn = r->end;

	for (b = 0; b <= d->max_block_id; b++)
	{
		DecodedBkpBlock *blk = &d->blocks[b];
		int			index;

		if (!blk->in_use)
			continue;
		nblocks++;
		if (check)
		{
			if ((int) blk->forknum < 0 || blk->forknum > MAX_FORKNUM)
				return psprintf("record %d at %X/%X: block %d has invalid fork %d",
								i, LSN_FORMAT_ARGS(r->start), b, (int) blk->forknum);
			if (blk->blkno == InvalidBlockNumber)
				return psprintf("record %d at %X/%X: block %d has an invalid block number",
								i, LSN_FORMAT_ARGS(r->start), b);
			if (!space_valid(blk->rnode.spcNode, blk->rnode.dbNode) ||
				blk->rnode.relNode == InvalidOid)
				return psprintf("record %d at %X/%X: block %d has invalid relation %u/%u/%u",
								i, LSN_FORMAT_ARGS(r->start), b, blk->rnode.spcNode,
								blk->rnode.dbNode, blk->rnode.relNode);
		}
		index = space_index(req, blk->rnode.spcNode, blk->rnode.dbNode, check);
		if (index < 0)
			return psprintf("record %d at %X/%X: more than %d tablespace/database pairs",
							i, LSN_FORMAT_ARGS(r->start), ZWR_MAX_SPACES);
		blk->rnode = mapped(index, blk->rnode.relNode);
		if (check)
			note_extent(req, blk->rnode, blk->forknum, blk->blkno);
	}
	if (nblocks == 0)
		return psprintf("record %d at %X/%X: %s record references no block",
						i, LSN_FORMAT_ARGS(r->start), rmgr_name(hdr->xl_rmid));
	return NULL;
}

/* ---- redo --------------------------------------------------------------- */

static void
redo_error_context(void *arg)
{
	ZwrRedoContext *c = (ZwrRedoContext *) arg;
	const char *id = NULL;

	if (RmgrIdExists(c->rmid) && RmgrTable[c->rmid].rm_identify != NULL)
		id = RmgrTable[c->rmid].rm_identify(c->info);
	errcontext("zenith_walredo: redo of record %d, %s/%s at %X/%X",
			   c->index, rmgr_name(c->rmid), id ? id : "UNKNOWN", LSN_FORMAT_ARGS(c->lsn));
}

static bool
is_target(ZwrRequest *req, DecodedBkpBlock *blk)
{
	return RelFileNodeEquals(blk->rnode, req->target) && blk->forknum == req->fork &&
		blk->blkno == req->blkno;
}

/*
 * Makes a non-target block look newer than any record: redo skips it
 * (BLK_DONE) but still gets a valid buffer for it.
 */
static void
place_future_page(RelFileNode rnode, ForkNumber fork, BlockNumber blkno)
{
	Buffer		buf;
	Page		page;

	buf = ReadBufferWithoutRelcache(rnode, fork, blkno, RBM_ZERO_AND_LOCK, NULL, true);
	page = BufferGetPage(buf);
	PageInit(page, BLCKSZ, 0);
	PageSetLSN(page, ZWR_FUTURE_LSN);
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);
}

/* Places the target's starting content: the base image, or zeros. */
static void
place_target(RelFileNode rnode, ForkNumber fork, BlockNumber blkno, const char *content)
{
	Buffer		buf;

	buf = ReadBufferWithoutRelcache(rnode, fork, blkno, RBM_ZERO_AND_LOCK, NULL, true);
	/* a buffer that is already valid is returned locked but not zeroed */
	if (content)
		memcpy(BufferGetPage(buf), content, BLCKSZ);
	else
		MemSet(BufferGetPage(buf), 0, BLCKSZ);
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);
}

/* Everything that touches buffers and files; runs inside a subtransaction. */
static void
apply_request(ZwrRequest *req, char *page_out)
{
	int			i;
	Buffer		buf;

	for (i = 0; i < req->nextents; i++)
	{
		ZwrExtent  *e = &req->extents[i];
		SMgrRelation s = smgropen(e->rnode, InvalidBackendId);

		smgrcreate(s, e->fork, true);
		/* one sparse write at the end instead of extending block by block */
		if (smgrnblocks(s, e->fork) <= e->maxblk)
			smgrextend(s, e->fork, e->maxblk, zero_page.data, true);
	}

	place_target(req->target, req->fork, req->blkno, req->base);

	for (i = 0; i < req->nrecords; i++)
	{
		DecodedXLogRecord *d;
		ZwrRedoContext ctx;
		ErrorContextCallback callback;
		char	   *err = decode_record(req, i, false);
		int			b;

		if (err)				/* it decoded during validation */
			elog(ERROR, "zenith_walredo: %s", err);
		d = req->decoded;
		ctx.index = i;
		ctx.lsn = req->records[i].start;
		ctx.rmid = d->header.xl_rmid;
		ctx.info = d->header.xl_info;
		callback.callback = redo_error_context;
		callback.arg = &ctx;
		callback.previous = error_context_stack;
		error_context_stack = &callback;

		for (b = 0; b <= d->max_block_id; b++)
		{
			DecodedBkpBlock *blk = &d->blocks[b];

			if (blk->in_use && !is_target(req, blk))
				place_future_page(blk->rnode, blk->forknum, blk->blkno);
		}

		reader->record = d;
		GetRmgr(d->header.xl_rmid).rm_redo(reader);
		reader->record = NULL;

		error_context_stack = callback.previous;
	}

	buf = ReadBufferWithoutRelcache(req->target, req->fork, req->blkno, RBM_NORMAL, NULL, true);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	memcpy(page_out, BufferGetPage(buf), BLCKSZ);
	UnlockReleaseBuffer(buf);
}

static char *
format_error(ErrorData *edata)
{
	StringInfoData s;
	char	   *p;

	initStringInfo(&s);
	appendStringInfoString(&s, edata->message ? edata->message : "unknown error");
	if (edata->detail)
		appendStringInfo(&s, " DETAIL: %s", edata->detail);
	if (edata->context)
		appendStringInfo(&s, " CONTEXT: %s", edata->context);
	for (p = s.data; *p; p++)
		if (*p == '\n')
			*p = ' ';
	return s.data;
}

/*
 * Runs apply_request in an internal subtransaction.  Returns NULL, or the
 * message of the ERROR it raised (the subtransaction is then rolled back,
 * which releases pins, content locks and heavyweight locks).
 */
static char *
apply_in_subtransaction(ZwrRequest *req, char *page_out)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	char	   *volatile err = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		apply_request(req, page_out);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		reader->record = NULL;
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		err = format_error(edata);
		FreeErrorData(edata);
	}
	PG_END_TRY();
	return err;
}

/*
 * Unlinks every relation the request touched, dropping its buffers unwritten
 * (they carry page LSNs of another cluster), forgets invalid-page entries and
 * closes the smgr entries so no cached size survives.  An ERROR here would
 * leave state we cannot reason about: answer and end the process.
 */
static void
drop_relations(ZwrRequest *req)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		SMgrRelation *srels = palloc(sizeof(SMgrRelation) * Max(req->nrels, 1));
		int			i;
		int			f;

		for (i = 0; i < req->nrels; i++)
			srels[i] = smgropen(req->rels[i], InvalidBackendId);
		if (req->nrels > 0)
			smgrdounlinkall(srels, req->nrels, true);
		for (i = 0; i < req->nrels; i++)
		{
			for (f = 0; f <= MAX_FORKNUM; f++)
				XLogDropRelation(req->rels[i], (ForkNumber) f);
			smgrclose(srels[i]);
		}
		AcceptInvalidationMessages();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		fail_fatal(psprintf("cleanup after a request failed: %s", format_error(edata)));
	}
	PG_END_TRY();
}

/* Reads, checks, applies and answers one request. */
static void
serve_request(void)
{
	char		lenbuf[4];
	uint32		len;
	char	   *body;
	char	   *err;
	char	   *page;
	ZwrRequest *req;
	int			i;

	if (!read_exact(lenbuf, sizeof(lenbuf)))
		fail_fatal("unexpected end of input in a request header");
	len = get_u32(lenbuf);
	if (len > ZWR_MAX_BODY)
	{
		/* skip the body so that the next request is read from its start */
		char		skip[8192];
		uint32		left = len;

		while (left > 0)
		{
			uint32		n = Min(left, (uint32) sizeof(skip));

			if (!read_exact(skip, n))
				fail_fatal("unexpected end of input in a request body");
			left -= n;
		}
		send_error(ZWR_ERROR_REJECTED,
				   psprintf("request body of %u bytes exceeds the limit of %d bytes",
							len, ZWR_MAX_BODY));
		return;
	}
	body = palloc(Max(len, 1));
	if (!read_exact(body, len))
		fail_fatal("unexpected end of input in a request body");

	req = palloc0(sizeof(ZwrRequest));
	req->extents_cap = 8;
	req->extents = palloc(sizeof(ZwrExtent) * req->extents_cap);
	req->rels_cap = 8;
	req->rels = palloc(sizeof(RelFileNode) * req->rels_cap);

	err = parse_request(body, len, req);
	if (err == NULL && req->base != NULL)
		err = check_base_image(req->base);
	if (err == NULL && req->nrecords > 0)
	{
		req->recbuf = palloc(req->maxlen);
		req->decoded = palloc(DecodeXLogRecordRequiredSpace(req->maxlen));
		for (i = 0; i < req->nrecords && err == NULL; i++)
			err = decode_record(req, i, true);
	}
	if (err != NULL)
	{
		send_error(ZWR_ERROR_REJECTED, err);
		return;
	}

	page = palloc(BLCKSZ);
	err = apply_in_subtransaction(req, page);
	drop_relations(req);
	if (err != NULL)
		send_error(ZWR_ERROR_REDO, err);
	else
		send_page(page);
}

/* One-time setup of the process; memory lives as long as the backend. */
static void
setup(void)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	/* btree, gin, gist and spgist redo work in contexts made by rm_startup */
	RmgrStartup();
	reader = XLogReaderAllocate(wal_segment_size, NULL, XL_ROUTINE(.page_read = NULL), NULL);
	if (reader == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	request_cxt = AllocSetContextCreate(TopMemoryContext, "zenith_walredo request",
										ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(old);
}

/*
 * SELECT zenith_walredo_loop();  -- in postgres --single only
 *
 * Answers the handshake, then serves requests until 'X' or end of input.
 */
Datum
zenith_walredo_loop(PG_FUNCTION_ARGS)
{
	MemoryContext old;

	(void) fcinfo;
	if (IsUnderPostmaster)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("zenith_walredo_loop() runs only in a single-user backend (postgres --single)")));
	if (loop_started)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("zenith_walredo_loop() already ran in this process")));
	loop_started = true;
	setup();
	send_handshake();

	old = MemoryContextSwitchTo(request_cxt);
	for (;;)
	{
		int			type = getc(stdin);

		if (type == EOF || type == ZWR_MSG_EXIT)
			break;
		if (type != ZWR_MSG_REDO)
			fail_fatal(psprintf("unknown message type 0x%02X", (unsigned) type));
		serve_request();
		MemoryContextSwitchTo(request_cxt);
		MemoryContextReset(request_cxt);
	}
	MemoryContextSwitchTo(old);
	PG_RETURN_VOID();
}
