/* lineedit.c: the line editor (see lineedit.h). */
#include "lm/lineedit.h"

#include "lm/unicode.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

struct width_range {
    uint32_t lo, hi;
};
#include "lineedit_width.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
enum { TAB_WIDTH = 4, DEFAULT_COLS = 80 };

/* ---- characters and columns -------------------------------------------- */

static bool in_ranges(const struct width_range *r, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp > r[mid].hi) lo = mid + 1;
        else if (cp < r[mid].lo) hi = mid;
        else return true;
    }
    return false;
}

/* Columns a code point takes as render_cp draws it. */
static int cp_width(uint32_t cp) {
    if (cp == '\t') return TAB_WIDTH;
    if (cp < 0x20 || cp == 0x7F) return 2; /* ^X */
    if (cp < 0x300 || cp >= LM_UNICODE_BAD) return 1;
    if (in_ranges(zero_width, COUNT(zero_width), cp)) return 0;
    return in_ranges(double_width, COUNT(double_width), cp) ? 2 : 1;
}

static void render_cp(struct lm_buf *out, const char *s, size_t n, uint32_t cp) {
    if (cp == '\t') {
        lm_buf_append(out, "    ", TAB_WIDTH);
    } else if (cp < 0x20 || cp == 0x7F) {
        lm_buf_putc(out, '^');
        lm_buf_putc(out, (char)(cp ^ 0x40));
    } else if ((cp >= 0x80 && cp < 0xA0) || cp >= LM_UNICODE_BAD) {
        lm_buf_puts(out, "\xEF\xBF\xBD"); /* U+FFFD: never send a terminal C1 controls or stray bytes */
    } else {
        lm_buf_append(out, s, n);
    }
}

static int str_width(const char *s) {
    int w = 0;
    for (size_t i = 0, n = strlen(s); i < n;) {
        uint32_t cp;
        i += lm_utf8_decode(s + i, n - i, &cp);
        w += cp_width(cp);
    }
    return w;
}

/* A character is a code point and the zero-width ones after it: the cursor
 * steps over it as one. next_char gives the end of the one at i (< len). */
static size_t next_char(const char *s, size_t len, size_t i) {
    uint32_t cp;
    i += lm_utf8_decode(s + i, len - i, &cp);
    while (i < len) {
        size_t k = lm_utf8_decode(s + i, len - i, &cp);
        if (cp_width(cp) != 0) break;
        i += k;
    }
    return i;
}

/* Start of the code point that ends at i > 0: a valid sequence ends there,
 * or the byte before i stands alone (as lm_utf8_decode would read it). A
 * valid sequence is unique, as only its first byte can be a lead byte. */
static size_t prev_cp(const char *s, size_t i, uint32_t *cp) {
    for (size_t k = 2; k <= 4 && k <= i; k++)
        if (lm_utf8_decode(s + i - k, k, cp) == k) return i - k;
    lm_utf8_decode(s + i - 1, 1, cp);
    return i - 1;
}

/* Start of the character that ends at i > 0. */
static size_t prev_char(const char *s, size_t i) {
    uint32_t cp;
    do i = prev_cp(s, i, &cp);
    while (i > 0 && cp_width(cp) == 0);
    return i;
}

/* Columns of the characters in s[a..b). */
static int span_width(const char *s, size_t a, size_t b) {
    int w = 0;
    while (a < b) {
        uint32_t cp;
        a += lm_utf8_decode(s + a, b - a, &cp);
        w += cp_width(cp);
    }
    return w;
}

static bool is_space(char c) { return c == ' ' || c == '\t'; }

/* ---- editing ------------------------------------------------------------ */

static void set_line(struct lm_lineedit *le, const char *s, size_t n) {
    le->line.len = 0;
    lm_buf_append(&le->line, s, n);
    le->pos = n;
    le->scroll = 0;
}

static void insert(struct lm_lineedit *le, const char *s, size_t n) {
    struct lm_buf *b = &le->line;
    lm_buf_reserve(b, n);
    memmove(b->data + le->pos + n, b->data + le->pos, b->len - le->pos + 1);
    memcpy(b->data + le->pos, s, n);
    b->len += n;
    le->pos += n;
}

/* Deletes line[a..b) and leaves the cursor at a. */
static void delete_span(struct lm_lineedit *le, size_t a, size_t b) {
    struct lm_buf *l = &le->line;
    memmove(l->data + a, l->data + b, l->len - b + 1);
    l->len -= b - a;
    le->pos = a;
}

static size_t word_left(const struct lm_lineedit *le) {
    size_t i = le->pos;
    while (i > 0 && is_space(le->line.data[i - 1])) i--;
    while (i > 0 && !is_space(le->line.data[i - 1])) i--;
    return i;
}

static size_t word_right(const struct lm_lineedit *le) {
    size_t i = le->pos, n = le->line.len;
    while (i < n && is_space(le->line.data[i])) i++;
    while (i < n && !is_space(le->line.data[i])) i++;
    return i;
}

/* Shows history entry idx (n_history: the line being typed). */
static void history_show(struct lm_lineedit *le, int idx) {
    if (le->history_pos == le->n_history) {
        le->saved.len = 0;
        lm_buf_append(&le->saved, le->line.data, le->line.len);
    }
    le->history_pos = idx;
    if (idx == le->n_history) set_line(le, le->saved.data, le->saved.len);
    else set_line(le, le->history[idx], strlen(le->history[idx]));
}

#define KEY_CTRL(c) ((c) & 0x1F)

/* A key that is one byte (a control character or printable ASCII). */
static int key(struct lm_lineedit *le, unsigned char c) {
    const char *s = le->line.data;
    size_t pos = le->pos, len = le->line.len;
    switch (c) {
    case KEY_CTRL('A'): le->pos = 0; break;
    case KEY_CTRL('E'): le->pos = len; break;
    case KEY_CTRL('B'): if (pos > 0) le->pos = prev_char(s, pos); break;
    case KEY_CTRL('F'): if (pos < len) le->pos = next_char(s, len, pos); break;
    case KEY_CTRL('C'): return LM_LINEEDIT_INTERRUPT;
    case KEY_CTRL('D'):
        if (len == 0) return LM_LINEEDIT_EOF;
        if (pos < len) delete_span(le, pos, next_char(s, len, pos));
        break;
    case KEY_CTRL('H'): case 0x7F: /* Backspace */
        if (pos > 0) delete_span(le, prev_char(s, pos), pos);
        break;
    case KEY_CTRL('K'): delete_span(le, pos, len); break;
    case KEY_CTRL('U'): delete_span(le, 0, pos); break;
    case KEY_CTRL('W'): delete_span(le, word_left(le), pos); break;
    case KEY_CTRL('L'): le->clear_screen = true; break;
    case KEY_CTRL('P'): if (le->history_pos > 0) history_show(le, le->history_pos - 1); break;
    case KEY_CTRL('N'): if (le->history_pos < le->n_history) history_show(le, le->history_pos + 1); break;
    case '\t': insert(le, "\t", 1); break;
    default:
        if (c >= 0x20 && c < 0x7F) insert(le, (const char *)&c, 1);
        break; /* other control keys do nothing */
    }
    return LM_LINEEDIT_MORE;
}

/* A key sent as CSI (ESC [ params final) or SS3 (ESC O final), xterm style. */
static int csi_key(struct lm_lineedit *le, char kind, const char *params, char final) {
    long n = strtol(params, NULL, 10); /* first parameter; params holds only 0x20..0x3F */
    const char *semi = strchr(params, ';');
    long mod = semi ? strtol(semi + 1, NULL, 10) : 1; /* 1 + (shift 1, alt 2, ctrl 4) */
    bool word = mod > 1 && ((mod - 1) & 6);
    switch (final) {
    case 'A': return key(le, KEY_CTRL('P'));
    case 'B': return key(le, KEY_CTRL('N'));
    case 'C':
        if (!word) return key(le, KEY_CTRL('F'));
        le->pos = word_right(le);
        break;
    case 'D':
        if (!word) return key(le, KEY_CTRL('B'));
        le->pos = word_left(le);
        break;
    case 'H': return key(le, KEY_CTRL('A'));
    case 'F': return key(le, KEY_CTRL('E'));
    case '~':
        if (kind != '[') break;
        if (n == 1 || n == 7) return key(le, KEY_CTRL('A'));
        if (n == 4 || n == 8) return key(le, KEY_CTRL('E'));
        if (n == 3 && le->pos < le->line.len) return key(le, KEY_CTRL('D')); /* Delete */
        if (n == 200) le->in_paste = true;
        break;
    }
    return LM_LINEEDIT_MORE;
}

static int byte(struct lm_lineedit *le, unsigned char c);

/* The byte after an ESC, or inside a CSI/SS3 sequence. */
static int escape_byte(struct lm_lineedit *le, unsigned char c) {
    size_t k = le->seq_len++;
    if (k < sizeof le->seq) le->seq[k] = (char)c;
    if (k == 1) {
        if (c == '[' || c == 'O') return LM_LINEEDIT_MORE;
        le->seq_len = 0;
        if (le->in_paste) {
            insert(le, "\x1b", 1);
            return byte(le, c);
        }
        if (c == 'b') le->pos = word_left(le);                                 /* Alt-B */
        else if (c == 'f') le->pos = word_right(le);                           /* Alt-F */
        else if (c == 0x7F || c == KEY_CTRL('H')) delete_span(le, word_left(le), le->pos); /* Alt-Backspace */
        else return byte(le, c); /* a lone Escape: drop it, keep the key after it */
        return LM_LINEEDIT_MORE;
    }
    bool ss3 = le->seq[1] == 'O';
    if (!ss3 && c >= 0x20 && c <= 0x3F) return LM_LINEEDIT_MORE; /* parameters, intermediates */
    size_t n = le->seq_len;
    le->seq_len = 0;
    if (c < 0x40 || c > 0x7E) return byte(le, c); /* not a sequence after all: the byte is a key */
    if (n > sizeof le->seq) return LM_LINEEDIT_MORE; /* too long to be a key we know */
    char params[sizeof le->seq];
    memcpy(params, le->seq + 2, n - 3);
    params[n - 3] = 0;
    if (le->in_paste) {
        if (!ss3 && c == '~' && !strcmp(params, "201")) le->in_paste = false;
        else insert(le, le->seq, n);
        return LM_LINEEDIT_MORE;
    }
    return csi_key(le, le->seq[1], params, (char)c);
}

/* A byte of a UTF-8 sequence: inserted once its character is complete (or
 * known to be invalid, then byte by byte). */
static int utf8_byte(struct lm_lineedit *le, unsigned char c) {
    le->seq[le->seq_len++] = (char)c;
    size_t k = lm_utf8_complete(le->seq, le->seq_len);
    insert(le, le->seq, k);
    memmove(le->seq, le->seq + k, le->seq_len - k);
    le->seq_len -= k;
    return LM_LINEEDIT_MORE;
}

static int byte(struct lm_lineedit *le, unsigned char c) {
    bool after_cr = le->after_cr;
    le->after_cr = false;
    if (le->seq_len > 0 && le->seq[0] == '\x1b') return escape_byte(le, c);
    if (c >= 0x80) return utf8_byte(le, c);
    if (le->seq_len > 0) { /* a UTF-8 sequence cut short: keep its bytes as they are */
        insert(le, le->seq, le->seq_len);
        le->seq_len = 0;
    }
    if (c == '\x1b') {
        le->seq[0] = (char)c;
        le->seq_len = 1;
        return LM_LINEEDIT_MORE;
    }
    if (c == '\n' && after_cr) return LM_LINEEDIT_MORE; /* CR LF is one newline */
    if (c == '\r' || c == '\n') {
        le->after_cr = c == '\r';
        return LM_LINEEDIT_LINE;
    }
    if (c == KEY_CTRL('C')) return LM_LINEEDIT_INTERRUPT; /* even inside a paste: a way out if its end never comes */
    if (le->in_paste) {
        insert(le, (const char *)&c, 1);
        return LM_LINEEDIT_MORE;
    }
    return key(le, c);
}

void lm_lineedit_begin(struct lm_lineedit *le, const char *prompt, int cols) {
    set_line(le, "", 0);
    le->prompt = prompt ? prompt : "";
    le->cols = cols;
    le->history_pos = le->n_history;
    le->saved.len = 0;
    le->seq_len = 0;
    le->clear_screen = false;
}

int lm_lineedit_feed(struct lm_lineedit *le, const char *bytes, size_t n, size_t *used) {
    int st = LM_LINEEDIT_MORE;
    size_t i = 0;
    while (i < n && st == LM_LINEEDIT_MORE) st = byte(le, (unsigned char)bytes[i++]);
    *used = i;
    return st;
}

/* The line is one row: the prompt, then the characters from scroll on. The
 * cursor must stay left of the last column (writing there would leave the
 * terminal waiting to wrap), so scroll follows the cursor, and moves back
 * when the text from an earlier character to the end fits. */
void lm_lineedit_render(struct lm_lineedit *le, struct lm_buf *out) {
    const char *s = le->line.data;
    size_t len = le->line.len;
    int cols = le->cols >= 2 ? le->cols : le->cols > 0 ? 2 : DEFAULT_COLS;
    int pw = str_width(le->prompt);
    bool show_prompt = pw <= cols - 2;
    if (!show_prompt) pw = 0;
    int room = cols - 1 - pw;

    if (le->scroll > le->pos) le->scroll = le->pos;
    int w = span_width(s, le->scroll, le->pos);
    while (w > room) {
        size_t next = next_char(s, len, le->scroll);
        w -= span_width(s, le->scroll, next);
        le->scroll = next;
    }
    int tail = span_width(s, le->scroll, len);
    while (le->scroll > 0) {
        size_t prev = prev_char(s, le->scroll);
        int cw = span_width(s, prev, le->scroll);
        if (tail + cw > room) break;
        tail += cw;
        w += cw;
        le->scroll = prev;
    }

    if (le->clear_screen) lm_buf_puts(out, "\x1b[H\x1b[2J");
    le->clear_screen = false;
    lm_buf_putc(out, '\r');
    if (show_prompt) lm_buf_puts(out, le->prompt);
    int shown = 0;
    for (size_t i = le->scroll; i < len;) {
        size_t end = next_char(s, len, i);
        int cw = span_width(s, i, end);
        if (shown + cw > room) break;
        shown += cw;
        while (i < end) {
            uint32_t cp;
            size_t k = lm_utf8_decode(s + i, end - i, &cp);
            render_cp(out, s + i, k, cp);
            i += k;
        }
    }
    lm_buf_puts(out, "\x1b[0K\r"); /* erase what the old line left, back to column 0 */
    if (pw + w > 0) lm_buf_printf(out, "\x1b[%dC", pw + w);
}

/* ---- history ------------------------------------------------------------ */

void lm_lineedit_history_add(struct lm_lineedit *le, const char *line) {
    if (le->history_max <= 0 || !line || !*line) return;
    if (le->n_history > 0 && !strcmp(le->history[le->n_history - 1], line)) return;
    if (le->n_history == le->history_max) {
        free(le->history[0]);
        memmove(le->history, le->history + 1, (size_t)(le->n_history - 1) * sizeof *le->history);
        le->n_history--;
    } else if (le->n_history == le->history_cap) {
        int cap = le->history_cap ? le->history_cap * 2 : 16;
        if (cap > le->history_max) cap = le->history_max;
        le->history = lm_xrealloc(le->history, (size_t)cap * sizeof *le->history);
        le->history_cap = cap;
    }
    le->history[le->n_history++] = lm_xstrdup(line);
}

/* ---- the terminal ------------------------------------------------------- */

/* Raw-mode state is global so that atexit and signal handlers can undo it. */
static struct termios saved_termios;
static volatile sig_atomic_t raw_fd = -1, raw_out_fd = -1;
static volatile sig_atomic_t got_sigint, got_winch;
static const int end_signals[] = {SIGTERM, SIGHUP, SIGQUIT};
static struct sigaction saved_end[COUNT(end_signals)], saved_int, saved_winch;

/* Async-signal-safe: only write and tcsetattr. */
static void raw_leave(void) {
    int fd = raw_fd;
    if (fd < 0) return;
    static const char paste_off[] = "\x1b[?2004l";
    ssize_t r = write(raw_out_fd, paste_off, sizeof paste_off - 1);
    (void)r;
    tcsetattr(fd, TCSANOW, &saved_termios);
    raw_fd = -1;
}

/* A signal that would end the process: give the terminal back, then let the
 * action in place before the read handle it. */
static void on_end_signal(int sig) {
    int e = errno;
    raw_leave();
    for (size_t i = 0; i < COUNT(end_signals); i++)
        if (end_signals[i] == sig) sigaction(sig, &saved_end[i], NULL);
    raise(sig); /* blocked until this handler returns */
    errno = e;
}

static void on_sigint(int sig) { got_sigint = 1; }
static void on_winch(int sig) { got_winch = 1; }

/* No SA_RESTART: the signal must cut a blocked read short. */
static void catch(int sig, void (*fn)(int), struct sigaction *old) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, old);
    if (old->sa_handler == SIG_IGN && sig != SIGINT) sigaction(sig, old, NULL); /* keep ignoring it */
}

static void catch_signals(bool raw) {
    got_sigint = got_winch = 0;
    catch(SIGINT, on_sigint, &saved_int);
    if (!raw) return;
    catch(SIGWINCH, on_winch, &saved_winch);
    for (size_t i = 0; i < COUNT(end_signals); i++) catch(end_signals[i], on_end_signal, &saved_end[i]);
}

static void release_signals(bool raw) {
    sigaction(SIGINT, &saved_int, NULL);
    if (!raw) return;
    sigaction(SIGWINCH, &saved_winch, NULL);
    for (size_t i = 0; i < COUNT(end_signals); i++) sigaction(end_signals[i], &saved_end[i], NULL);
}

static int raw_enter(int in, int out) {
    static bool registered;
    struct termios t;
    if (tcgetattr(in, &saved_termios) < 0) return -1;
    if (!registered) {
        atexit(raw_leave);
        registered = true;
    }
    t = saved_termios;
    /* As cfmakeraw, minus what only matters for output: keys arrive
     * byte by byte, unechoed, with Ctrl-C/Ctrl-Z/Ctrl-S as plain bytes. */
    t.c_iflag &= ~(tcflag_t)(BRKINT | ICRNL | INPCK | ISTRIP | IXON);
    t.c_oflag &= ~(tcflag_t)OPOST;
    t.c_cflag |= CS8;
    t.c_lflag &= ~(tcflag_t)(ECHO | ICANON | IEXTEN | ISIG);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    raw_out_fd = out;
    raw_fd = in;
    if (tcsetattr(in, TCSANOW, &t) < 0) { /* TCSANOW, not FLUSH: keep keys typed ahead */
        raw_fd = -1;
        return -1;
    }
    return 0;
}

static int write_all(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t r = write(fd, s, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        s += r;
        n -= (size_t)r;
    }
    return 0;
}

static int term_cols(int fd) {
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) < 0 || ws.ws_col == 0) return DEFAULT_COLS;
    return ws.ws_col;
}

/* Makes unused input available: returns how many bytes are pending (after
 * one read() if none were), 0 at end of input, -1 with errno set. */
static ssize_t fill(struct lm_lineedit *le) {
    struct lm_buf *p = &le->pending;
    if (le->pending_off < p->len) return (ssize_t)(p->len - le->pending_off);
    p->len = le->pending_off = 0;
    lm_buf_reserve(p, 4096);
    for (;;) {
        ssize_t r = read(le->in_fd, p->data, 4096);
        if (r < 0 && errno == EAGAIN) { /* a non-blocking descriptor: wait for input */
            struct pollfd pfd = {.fd = le->in_fd, .events = POLLIN};
            if (poll(&pfd, 1, -1) >= 0) continue;
            return -1; /* with poll's errno: the callers handle EINTR */
        }
        if (r > 0) p->len = (size_t)r;
        return r;
    }
}

static int read_plain(struct lm_lineedit *le, const char *prompt, struct lm_buf *out) {
    bool dumb = le->mode == LM_LINEEDIT_DUMB;
    if (dumb && prompt && write_all(le->out_fd, prompt, strlen(prompt)) < 0) return LM_LINEEDIT_ERROR;
    if (dumb) catch_signals(false);
    int st;
    for (;;) {
        ssize_t r = fill(le);
        if (r < 0 && errno == EINTR) {
            if (!got_sigint) continue; /* someone else's signal */
            out->len = 0;
            st = LM_LINEEDIT_INTERRUPT;
            break;
        }
        if (r < 0) {
            st = LM_LINEEDIT_ERROR;
            break;
        }
        if (r == 0) {
            st = out->len ? LM_LINEEDIT_LINE : LM_LINEEDIT_EOF;
            break;
        }
        const char *p = le->pending.data + le->pending_off;
        const char *nl = memchr(p, '\n', (size_t)r);
        size_t take = nl ? (size_t)(nl - p) : (size_t)r;
        lm_buf_append(out, p, take);
        le->pending_off += take + (nl != NULL);
        if (nl) {
            if (out->len && out->data[out->len - 1] == '\r') out->data[--out->len] = 0;
            st = LM_LINEEDIT_LINE;
            break;
        }
    }
    if (dumb) {
        release_signals(false);
        /* The terminal echoed no newline for Ctrl-C or Ctrl-D: start a new row. */
        if ((st == LM_LINEEDIT_INTERRUPT || st == LM_LINEEDIT_EOF) && write_all(le->out_fd, "\n", 1) < 0)
            st = LM_LINEEDIT_ERROR;
    }
    return st;
}

static int read_raw(struct lm_lineedit *le, const char *prompt, struct lm_buf *out) {
    if (raw_enter(le->in_fd, le->out_fd) < 0) {
        le->mode = LM_LINEEDIT_DUMB;
        return read_plain(le, prompt, out);
    }
    catch_signals(true);
    lm_lineedit_begin(le, prompt, term_cols(le->out_fd));
    if (le->pending_off == le->pending.len) le->in_paste = false; /* a paste never ends between reads */
    struct lm_buf o = {0};
    lm_buf_puts(&o, "\x1b[?2004h"); /* bracketed paste on */
    int st = LM_LINEEDIT_MORE;
    while (st == LM_LINEEDIT_MORE) {
        lm_lineedit_render(le, &o);
        if (write_all(le->out_fd, o.data, o.len) < 0) {
            st = LM_LINEEDIT_ERROR;
            break;
        }
        o.len = 0;
        ssize_t r = fill(le);
        if (r < 0 && errno == EINTR) {
            if (got_sigint) st = LM_LINEEDIT_INTERRUPT;
            if (got_winch) le->cols = term_cols(le->out_fd);
            got_winch = 0;
            continue;
        }
        if (r == 0) { /* the terminal hung up */
            st = le->line.len ? LM_LINEEDIT_LINE : LM_LINEEDIT_EOF;
            break;
        }
        if (r < 0) {
            st = LM_LINEEDIT_ERROR;
            break;
        }
        size_t used;
        st = lm_lineedit_feed(le, le->pending.data + le->pending_off, (size_t)r, &used);
        le->pending_off += used;
    }
    if (st != LM_LINEEDIT_ERROR) {
        /* Leave the whole line in view and the cursor on a new row. */
        o.len = 0;
        le->pos = le->line.len;
        lm_lineedit_render(le, &o);
        lm_buf_puts(&o, st == LM_LINEEDIT_INTERRUPT ? "^C\r\n" : "\r\n");
        if (write_all(le->out_fd, o.data, o.len) < 0) st = LM_LINEEDIT_ERROR;
    }
    lm_buf_free(&o);
    raw_leave();
    release_signals(true);
    if (st == LM_LINEEDIT_LINE) lm_buf_append(out, le->line.data, le->line.len);
    return st;
}

/* ---- the public readers ------------------------------------------------- */

void lm_lineedit_init(struct lm_lineedit *le, int history_max) {
    memset(le, 0, sizeof *le);
    le->in_fd = 0;
    le->out_fd = 1;
    le->history_max = history_max;
}

void lm_lineedit_free(struct lm_lineedit *le) {
    for (int i = 0; i < le->n_history; i++) free(le->history[i]);
    free(le->history);
    lm_buf_free(&le->line);
    lm_buf_free(&le->saved);
    lm_buf_free(&le->pending);
    memset(le, 0, sizeof *le);
}

static enum lm_lineedit_mode pick_mode(const struct lm_lineedit *le) {
    if (!isatty(le->in_fd)) return LM_LINEEDIT_PLAIN;
    const char *term = getenv("TERM");
    if (!isatty(le->out_fd) || !term || !*term || !strcmp(term, "dumb")) return LM_LINEEDIT_DUMB;
    return LM_LINEEDIT_RAW;
}

int lm_lineedit_read(struct lm_lineedit *le, const char *prompt, struct lm_buf *out) {
    out->len = 0;
    lm_buf_reserve(out, 0);
    out->data[0] = 0;
    if (le->out_fd == STDOUT_FILENO) fflush(stdout); /* what the caller printed goes first */
    le->mode = pick_mode(le);
    int st = le->mode == LM_LINEEDIT_RAW ? read_raw(le, prompt, out) : read_plain(le, prompt, out);
    if (st != LM_LINEEDIT_LINE) {
        out->len = 0;
        out->data[0] = 0;
    }
    return st;
}

int lm_lineedit_read_message(struct lm_lineedit *le, const char *prompt, const char *cont_prompt,
                             struct lm_buf *out) {
    struct lm_buf line = {0};
    bool continued = false;
    int st;
    out->len = 0;
    lm_buf_reserve(out, 0);
    out->data[0] = 0;
    for (;;) {
        st = lm_lineedit_read(le, continued ? cont_prompt : prompt, &line);
        if (st != LM_LINEEDIT_LINE) {
            if (st == LM_LINEEDIT_EOF && continued) st = LM_LINEEDIT_LINE; /* keep what was read */
            break;
        }
        lm_lineedit_history_add(le, line.data);
        bool more = line.len > 0 && line.data[line.len - 1] == '\\';
        if (continued) lm_buf_putc(out, '\n');
        lm_buf_append(out, line.data, line.len - more);
        if (!more) break;
        continued = true;
    }
    lm_buf_free(&line);
    if (st != LM_LINEEDIT_LINE) {
        out->len = 0;
        out->data[0] = 0;
    }
    return st;
}
