/* PIDF presence documents (RFC 3863) with the RPID extensions that carry
 * activities and notes (RFC 4480), in and out. Parsing uses expat under the
 * same limits as every other parser of the gateway (size, depth, no DTD or
 * entities); writing uses the XML serializer, never string pasting. The
 * document is reduced to what the gateway maps: one presentity's combined
 * availability, a note, activities and (for OCS/Lync-style servers) the
 * Microsoft availability number. No sockets, no timers: the fuzzer drives
 * this module alone. */
#ifndef XS_PRESENCE_PIDF_H
#define XS_PRESENCE_PIDF_H

#include <stddef.h>

#include "core/buf.h"

#define XS_PIDF_MAX_DOC 65536    /* bytes of a document we read */
#define XS_PIDF_MAX_DEPTH 16     /* element nesting */
#define XS_PIDF_MAX_TUPLES 32    /* tuples read; more: XS_ELIMIT */
#define XS_PIDF_TEXT_MAX 1024    /* bytes of a note kept (longer ones are cut at a UTF-8 boundary) */
#define XS_PIDF_ACTIVITIES_MAX 8 /* activity names kept */
#define XS_PIDF_ACTIVITY_NAME_MAX 32 /* bytes of one activity name; longer ones are skipped */
#define XS_PIDF_TUPLE_ID_MAX 64

enum xs_pidf_basic { XS_PIDF_UNKNOWN = 0, XS_PIDF_OPEN = 1, XS_PIDF_CLOSED = 2 };

/* One <tuple>: a device or resource of the presentity. */
struct xs_pidf_tuple {
    char id[XS_PIDF_TUPLE_ID_MAX + 1];
    enum xs_pidf_basic basic;
    int priority; /* <contact priority="0.8">, x1000 (800); -1 when absent or malformed */
};

/* What a document says, combined over its tuples and person elements. All
 * strings are NUL-terminated UTF-8 owned by the struct (fixed arrays, so it
 * needs no freeing); empty when absent. */
struct xs_pidf {
    char entity[512];              /* <presence entity="..."> */
    enum xs_pidf_basic basic;      /* OPEN if any tuple is open, else CLOSED if any is closed */
    /* The note chosen: a person's own (dm:note), else one deeper in a
     * person (rpid:note of its activities or mood), else a tuple's or
     * device's, else the document's own <note>; within each, the first
     * without xml:lang, else the first. Trimmed of whitespace; a
     * whitespace-only note is none. */
    char note[XS_PIDF_TEXT_MAX + 1];
    char note_lang[36];            /* its xml:lang, inherited too; "" if none or longer */
    /* The RPID children of every RPID <activities>, in document order, as their
     * local names ("away", "on-the-phone", "meeting"; <other>text</other>
     * as "other"), space-separated, without repeats or <unknown/>; names
     * longer than XS_PIDF_ACTIVITY_NAME_MAX and those past
     * XS_PIDF_ACTIVITIES_MAX are left out. */
    char activities[XS_PIDF_ACTIVITIES_MAX * (XS_PIDF_ACTIVITY_NAME_MAX + 1)];
    int availability;              /* Microsoft <availability> number (the first valid
                                      one); 0 when absent */
    size_t n_tuples;
    struct xs_pidf_tuple tuples[XS_PIDF_MAX_TUPLES];
};

/* Parses doc[0..len) (borrowed) into *out. Returns 0, or:
 *   XS_ELIMIT  larger than XS_PIDF_MAX_DOC, deeper than XS_PIDF_MAX_DEPTH,
 *              more than XS_PIDF_MAX_TUPLES tuples, an entity that does
 *              not fit `entity`;
 *   XS_EPROTO  not well-formed XML (truncated, NUL bytes, invalid UTF-8),
 *              a DTD or entity declaration, an encoding other than UTF-8
 *              declared, or the root is not urn:ietf:params:xml:ns:pidf
 *              <presence>;
 *   XS_EINVAL  doc NULL with len > 0;
 *   XS_ENOMEM.
 * On failure *out is all zeros. `why` (may be NULL) gets a static text for
 * the log and the SIP answer; NULL on success. */
int xs_pidf_parse(const char *doc, size_t len, struct xs_pidf *out, const char **why);

/* Writes a PIDF document for entity with one tuple (id "t" when tuple_id is
 * NULL) whose <basic> is basic, the note (may be NULL, empty or whitespace
 * for none) in lang (may be NULL) as a <note> of the tuple (one place
 * only: readers that gather every note would show it twice), the activities (space-separated names, may be NULL; repeats
 * and "unknown" dropped) as RPID <activities> of the person, and the
 * availability number when not 0 (in the Lync state namespace). Every
 * argument is borrowed. Appends to out; on failure out is as it was.
 * Returns 0, XS_ENOMEM, XS_ELIMIT (out's bound) or XS_EINVAL (basic
 * UNKNOWN, entity empty or longer than xs_pidf.entity holds, availability
 * negative, a tuple id or activity name that is not an ASCII NCName of at
 * most XS_PIDF_TUPLE_ID_MAX / XS_PIDF_ACTIVITY_NAME_MAX bytes, the activity
 * "note", or more than XS_PIDF_ACTIVITIES_MAX activities). Parsing the
 * result gives back these values, the note trimmed. */
int xs_pidf_write(const char *entity, const char *tuple_id, enum xs_pidf_basic basic,
                  const char *note, const char *lang, const char *activities, int availability,
                  struct xs_buf *out);

#endif
