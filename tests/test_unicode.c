/* Unicode tests: category flags (values from the Unicode standard), strict
 * UTF-8, GPT-2's byte alphabet, and the pre-tokenizers against splits made
 * by Python's `regex` package (scripts/pretok-ref.py). */
#include "lm/unicode.h"

#include "test.h"

TEST(unicode_flags) {
    struct {
        uint32_t cp;
        unsigned flags;
    } cases[] = {
        {'A', LM_UC_LETTER}, {'z', LM_UC_LETTER}, {'5', LM_UC_NUMBER}, {'!', LM_UC_PUNCT}, {'_', LM_UC_PUNCT},
        {'$', LM_UC_SYMBOL}, {'`', LM_UC_SYMBOL}, {' ', LM_UC_SEPARATOR | LM_UC_SPACE},
        {'\t', LM_UC_OTHER | LM_UC_SPACE}, {'\n', LM_UC_OTHER | LM_UC_SPACE}, {0x0B, LM_UC_OTHER | LM_UC_SPACE},
        {0x1C, LM_UC_OTHER}, {0x00, LM_UC_OTHER}, {0x7F, LM_UC_OTHER},
        {0x85, LM_UC_OTHER | LM_UC_SPACE},          /* NEXT LINE */
        {0xA0, LM_UC_SEPARATOR | LM_UC_SPACE},      /* NO-BREAK SPACE */
        {0xAD, LM_UC_OTHER},                        /* SOFT HYPHEN, Cf */
        {0xB5, LM_UC_LETTER}, {0xBD, LM_UC_NUMBER}, /* MICRO SIGN, ONE HALF */
        {0xE9, LM_UC_LETTER}, {0x301, LM_UC_MARK},  /* COMBINING ACUTE */
        {0x663, LM_UC_NUMBER},                      /* ARABIC-INDIC DIGIT THREE */
        {0x200B, LM_UC_OTHER},                      /* ZERO WIDTH SPACE: Cf, not White_Space */
        {0x2029, LM_UC_SEPARATOR | LM_UC_SPACE}, {0x3000, LM_UC_SEPARATOR | LM_UC_SPACE},
        {0x3001, LM_UC_PUNCT}, {0x4E00, LM_UC_LETTER}, {0xAC00, LM_UC_LETTER}, {0x2160, LM_UC_NUMBER}, /* Ⅰ */
        {0x378, LM_UC_OTHER},                       /* unassigned */
        {0xE000, LM_UC_OTHER}, {0x10FFFF, LM_UC_OTHER}, {0x1F600, LM_UC_SYMBOL}, {0x1D44C, LM_UC_LETTER},
        {LM_UNICODE_BAD + 0xFF, LM_UC_SYMBOL},     /* as U+FFFD */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (lm_unicode_flags(cases[i].cp) != cases[i].flags)
            test_fail(__FILE__, __LINE__, "U+%04X: flags %#x, expected %#x", cases[i].cp, lm_unicode_flags(cases[i].cp),
                      cases[i].flags);
    }
    for (uint32_t cp = 0; cp < 0x110000; cp++) {
        if (lm_unicode_flags(cp) == 0) {
            test_fail(__FILE__, __LINE__, "U+%04X has no flags", cp);
            break;
        }
    }
    return 0;
}

TEST(unicode_utf8) {
    struct {
        const char *s;
        size_t n;
        uint32_t cp;
        size_t len;
    } cases[] = {
        {"A", 1, 'A', 1}, {"\0", 1, 0, 1}, {"\xC3\xA9", 2, 0xE9, 2}, {"\xE2\x82\xAC", 3, 0x20AC, 3},
        {"\xF0\x9D\x91\x8C", 4, 0x1D44C, 4}, {"\xF4\x8F\xBF\xBF", 4, 0x10FFFF, 4},
        {"\xC0\x80", 2, LM_UNICODE_BAD + 0xC0, 1},         /* overlong NUL */
        {"\xE0\x80\x80", 3, LM_UNICODE_BAD + 0xE0, 1},     /* overlong */
        {"\xED\xA0\x80", 3, LM_UNICODE_BAD + 0xED, 1},     /* surrogate */
        {"\xF4\x90\x80\x80", 4, LM_UNICODE_BAD + 0xF4, 1}, /* past U+10FFFF */
        {"\xF5\x80\x80\x80", 4, LM_UNICODE_BAD + 0xF5, 1}, {"\x80", 1, LM_UNICODE_BAD + 0x80, 1},
        {"\xE2\x82", 2, LM_UNICODE_BAD + 0xE2, 1},         /* truncated */
        {"\xE2\x28\xA1", 3, LM_UNICODE_BAD + 0xE2, 1},     /* bad continuation */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t cp;
        size_t len = lm_utf8_decode(cases[i].s, cases[i].n, &cp);
        if (cp != cases[i].cp || len != cases[i].len)
            test_fail(__FILE__, __LINE__, "case %zu: U+%04X/%zu, expected U+%04X/%zu", i, cp, len, cases[i].cp, cases[i].len);
    }
    uint32_t cps[] = {0, 0x7F, 0x80, 0x7FF, 0x800, 0xFFFF, 0x10000, 0x10FFFF};
    for (size_t i = 0; i < sizeof cps / sizeof cps[0]; i++) {
        char buf[4];
        uint32_t back;
        size_t n = lm_utf8_encode(cps[i], buf);
        EXPECT(lm_utf8_decode(buf, n, &back) == n && back == cps[i]);
    }

    struct {
        const char *s;
        size_t complete;
    } tails[] = {
        {"abc", 3}, {"a\xE2\x82", 1}, {"a\xE2", 1}, {"\xF0\x9F\x98", 0}, {"\xF0\x9F\x98\x80", 4},
        {"a\xE2" "A", 3}, {"a\x80", 2}, {"\xE0\x80", 2}, {"\xC3\xA9", 2}, {"", 0},
    };
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++)
        if (lm_utf8_complete(tails[i].s, strlen(tails[i].s)) != tails[i].complete)
            test_fail(__FILE__, __LINE__, "complete('%s') = %zu, expected %zu", tails[i].s,
                      lm_utf8_complete(tails[i].s, strlen(tails[i].s)), tails[i].complete);
    return 0;
}

/* GPT-2's bytes_to_unicode: 'Ġ' is the space and 'Ċ' the newline of every
 * byte-level vocabulary. */
TEST(unicode_byte_alphabet) {
    EXPECT_EQ_INT(lm_unicode_byte_to_cp(' '), 0x120);
    EXPECT_EQ_INT(lm_unicode_byte_to_cp('\n'), 0x10A);
    EXPECT_EQ_INT(lm_unicode_byte_to_cp(0x00), 0x100);
    EXPECT_EQ_INT(lm_unicode_byte_to_cp(0x7F), 0x121);
    EXPECT_EQ_INT(lm_unicode_byte_to_cp(0xA0), 0x142);
    EXPECT_EQ_INT(lm_unicode_byte_to_cp(0xAD), 0x143);
    EXPECT_EQ_INT(lm_unicode_byte_to_cp('A'), 'A');
    EXPECT_EQ_INT(lm_unicode_byte_to_cp(0xFF), 0xFF);
    bool seen[0x144] = {0};
    for (int b = 0; b < 256; b++) {
        uint32_t cp = lm_unicode_byte_to_cp((uint8_t)b);
        EXPECT(cp < 0x144 && !seen[cp]);
        if (cp < 0x144) seen[cp] = true;
        EXPECT_EQ_INT(lm_unicode_cp_to_byte(cp), b);
    }
    EXPECT_EQ_INT(lm_unicode_cp_to_byte(0x144), -1);
    EXPECT_EQ_INT(lm_unicode_cp_to_byte(' '), -1);
    EXPECT_EQ_INT(lm_unicode_cp_to_byte(0xAD), -1);
    return 0;
}

/* Expected pieces: python3 scripts/pretok-ref.py PRE TEXT. */
static const struct {
    enum lm_pretok pre;
    const char *text;
    const char *pieces[20];
} split_cases[] = {
    {LM_PRETOK_GPT2, "Hello world's  end  ", {"Hello", " world", "'s", " ", " end", "  ", NULL}},
    {LM_PRETOK_GPT2, "a\t\tb\n\nc", {"a", "\t", "\t", "b", "\n", "\n", "c", NULL}},
    {LM_PRETOK_GPT2, "I've 123 ok?!  ...", {"I", "'ve", " 123", " ok", "?!", " ", " ...", NULL}},
    {LM_PRETOK_GPT2, "don'T   x", {"don", "'", "T", "  ", " x", NULL}},
    {LM_PRETOK_LLAMA3, "Hello  world\n\n  x 12345 Don'T",
     {"Hello", " ", " world", "\n\n", " ", " x", " ", "123", "45", " Don", "'T", NULL}},
    {LM_PRETOK_LLAMA3, "a, b!\r\n\r\nc", {"a", ",", " b", "!\r\n\r\n", "c", NULL}},
    {LM_PRETOK_LLAMA3, " 'll \xC2\xA0\xC2\xA0z", {" '", "ll", " \xC2\xA0", "\xC2\xA0z", NULL}},
    {LM_PRETOK_QWEN2, "x 2024 y", {"x", " ", "2", "0", "2", "4", " y", NULL}},
    {LM_PRETOK_QWEN2, "!!\n\nok", {"!!\n\n", "ok", NULL}},
    {LM_PRETOK_STARCODER, "x 2024 y", {"x", " ", "2", "0", "2", "4", " y", NULL}},
    {LM_PRETOK_STARCODER, "v1.23\t\tz", {"v", "1", ".", "2", "3", "\t", "\t", "z", NULL}},
    {LM_PRETOK_DEEPSEEK_LLM, "Hi, 3.14 \xE4\xB8\xAD\xE6\x96\x87\xE5\xAD\x97 test  \n",
     {"Hi", ",", " ", "3", ".", "14", " ", "\xE4\xB8\xAD\xE6\x96\x87\xE5\xAD\x97", " test", "  ", "\n", NULL}},
    {LM_PRETOK_DEEPSEEK_LLM, "'LL \xE2\x80\xA9 \xEA\xB1\xAE\xC5\x87",
     {"'", "LL", " \xE2\x80\xA9 ", "\xEA\xB1\xAE", "\xC5\x87", NULL}},
    {LM_PRETOK_DEEPSEEK_LLM, "a\xE3\x80\x80\xE3\x80\x81" "b 12", {"a", "\xE3\x80\x80", "\xE3\x80\x81", "b", " ", "12", NULL}},
    {LM_PRETOK_DEEPSEEK_CODER, "Hi, 3.14 \xE4\xB8\xAD\xE6\x96\x87 test\n\nx",
     {"Hi", ",", " ", "3", ".", "1", "4", " ", "\xE4\xB8\xAD\xE6\x96\x87", " test", "\n", "\n", "x", NULL}},
    {LM_PRETOK_DEEPSEEK_CODER, "  foo(bar)  ", {" ", " foo", "(", "bar", ")", "  ", NULL}},
    {LM_PRETOK_FALCON, "a=12345+b", {"a", "=", "123", "45", "+", "b", NULL}},
    {LM_PRETOK_FALCON, "x <<= y; 1234567", {"x", " ", "<<=", " y", ";", " ", "123", "456", "7", NULL}},
    {LM_PRETOK_QWEN35, "e\xCC\x81t\xCC\x81" "e 12 ok",
     {"e\xCC\x81t\xCC\x81" "e", " ", "1", "2", " ok", NULL}},
    {LM_PRETOK_QWEN35, "a\xCC\x80\xCC\x81!\xCC\x82" "b",
     {"a\xCC\x80\xCC\x81", "!\xCC\x82" "b", NULL}},
    {LM_PRETOK_QWEN35, "  \xCC\x81x \xCC\x81",
     {" ", " \xCC\x81x", " \xCC\x81", NULL}},
    {LM_PRETOK_QWEN35, "\xE0\xA4\x95\xE0\xA4\xBF\xE0\xA4\xA4\xE0\xA4\xBE\xE0\xA4\xAC \xE0\xA4\xA8\xE0\xA4\xB9\xE0\xA5\x80\xE0\xA4\x82",
     {"\xE0\xA4\x95\xE0\xA4\xBF\xE0\xA4\xA4\xE0\xA4\xBE\xE0\xA4\xAC", " \xE0\xA4\xA8\xE0\xA4\xB9\xE0\xA5\x80\xE0\xA4\x82", NULL}},
    {LM_PRETOK_DEFAULT, "a$$b `x` 1234567 \xD9\xA1\xD9\xA2\xD9\xA3\xD9\xA4\xD9\xA5 x\xC2\xA0\xC2\xA0y",
     {"a", "$$", "b", " `", "x", "`", " ", "123", "456", "7", " ", "\xD9\xA1\xD9\xA2\xD9\xA3\xD9\xA4\xD9\xA5", " x", "\xC2\xA0", "\xC2\xA0", "y", NULL}},
    {LM_PRETOK_DEFAULT, "don't 3.14159 ...?!  x",
     {"don", "'", "t", " ", "3", ".", "141", "59", " ", "...?!", " ", " x", NULL}},
    {LM_PRETOK_GEMMA4, "a\xE2\x96\x81" "b\n\nc\n",
     {"a\xE2\x96\x81" "b", "\n\n", "c", "\n", NULL}},
    {LM_PRETOK_GEMMA4, "\n\n\xE2\x96\x81x\r\n",
     {"\n\n", "\xE2\x96\x81x\r", "\n", NULL}},
};

TEST(unicode_pretok_split) {
    struct lm_pretok_buf b = {0};
    for (size_t i = 0; i < sizeof split_cases / sizeof split_cases[0]; i++) {
        const char *text = split_cases[i].text;
        lm_pretok_split(split_cases[i].pre, text, strlen(text), &b);
        size_t start = 0, k = 0;
        for (; k < b.n && split_cases[i].pieces[k]; k++) {
            const char *want = split_cases[i].pieces[k];
            if (b.ends[k] - start != strlen(want) || memcmp(text + start, want, strlen(want)) != 0) break;
            start = b.ends[k];
        }
        if (k != b.n || split_cases[i].pieces[k])
            test_fail(__FILE__, __LINE__, "case %zu ('%s'): piece %zu differs (got %zu pieces)", i, text, k, b.n);
    }
    /* Every byte belongs to exactly one piece, whatever the input. */
    const char junk[] = "\xFF\xC3(\x00 \xE2\x82 12'S\xF0\x9F\x98 \r\n\t\x80x";
    for (int p = 0; p < LM_PRETOK_COUNT; p++) {
        lm_pretok_split((enum lm_pretok)p, junk, sizeof junk - 1, &b);
        EXPECT(b.n > 0 && b.ends[b.n - 1] == sizeof junk - 1);
        for (size_t k = 1; k < b.n; k++) EXPECT(b.ends[k] > b.ends[k - 1]);
    }
    lm_pretok_split(LM_PRETOK_GPT2, "", 0, &b);
    EXPECT_EQ_INT(b.n, 0);
    lm_pretok_free(&b);
    return 0;
}
