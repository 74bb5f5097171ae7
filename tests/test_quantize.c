/* lm quantize: the per-tensor rules on synthetic models, round trips of
 * every type (data equal to the reference quantizer's, error within the
 * format's bound, metadata and 1-D tensors copied), and the command as a
 * user runs it: refusing to overwrite, bad input, a full disk (a file-size
 * limit) and Ctrl-C, each leaving OUT untouched. */
#include "hostile_files.h"
#include "test.h"

#include "lm/quantize.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t rng_state;
static float rng_uniform(void) { /* [-1, 1) */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((double)(z >> 11) * 0x1.0p-53 * 2 - 1);
}

/* A llama-shaped model: token_embd [E, V], output_norm [E], output [E, V]
 * when untied, and per layer norms [E], attn_q/attn_output [E, E],
 * attn_k/attn_v [E, E/gqa], ffn_gate/ffn_up [E, F], ffn_down [F, E] (or
 * their expert versions, 3-D). */
struct spec {
    const char *arch;
    int n_layer, n_embd, n_ff, n_vocab, n_head, n_head_kv, n_expert;
    bool untied;
    bool no_data; /* matrices of two rows of zeros: for plans, which look at row lengths */
    enum lm_type type; /* of the matrices */
    uint32_t alignment;
};

static void add_tensor(struct lm_gguf_writer *w, const struct spec *s, const char *name, enum lm_type type, int n_dims,
                       int64_t ne0, int64_t ne1, int64_t ne2) {
    if (s->no_data && n_dims > 1) ne1 = 2, ne2 = 1; /* two rows: one would make it 1-D */
    const int64_t ne[3] = {ne0, ne1, ne2}, n = ne0 * ne1 * ne2;
    const struct lm_type_traits *t = lm_type_get_ref(type);
    float *x = lm_xcalloc((size_t)n, sizeof(float));
    for (int64_t r = 0; r < n / ne0 && !s->no_data; r++) {
        const float scale = (float)(1 + r % 7) * 0.05f; /* rows of different ranges */
        for (int64_t j = 0; j < ne0; j++) x[r * ne0 + j] = rng_uniform() * scale;
    }
    void *q = lm_xmalloc((size_t)(n / t->blck) * t->size);
    t->from_f32(x, q, n);
    lm_gguf_write_tensor(w, name, type, n_dims, ne, q);
    free(q);
    free(x);
}

/* Metadata of every value type, as converters write it. */
static void add_metadata(struct lm_gguf_writer *w, const struct spec *s) {
    char key[96];
    lm_gguf_write_str(w, "general.architecture", s->arch);
    lm_gguf_write_str(w, "general.name", "t\xc3\xa9st");
    if (s->alignment) lm_gguf_write_u32(w, "general.alignment", s->alignment);
#define ARCH_KEY(suffix) (snprintf(key, sizeof key, "%s.%s", s->arch, suffix), key)
    lm_gguf_write_u32(w, ARCH_KEY("block_count"), (uint32_t)s->n_layer);
    lm_gguf_write_u32(w, ARCH_KEY("embedding_length"), (uint32_t)s->n_embd);
    lm_gguf_write_u32(w, ARCH_KEY("feed_forward_length"), (uint32_t)s->n_ff);
    lm_gguf_write_u32(w, ARCH_KEY("attention.head_count"), (uint32_t)s->n_head);
    lm_gguf_write_u32(w, ARCH_KEY("attention.head_count_kv"), (uint32_t)s->n_head_kv);
    if (s->n_expert) lm_gguf_write_u32(w, ARCH_KEY("expert_count"), (uint32_t)s->n_expert);
    lm_gguf_write_f32(w, ARCH_KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
#undef ARCH_KEY
    lm_gguf_write_i32(w, "x.i32", -3);
    lm_gguf_write_u64(w, "x.u64", 1ull << 40);
    lm_gguf_write_bool(w, "x.bool", true);
    gguf_write_hand_values(w, "x.");
    const char *tokens[] = {"<s>", "a", "b\xc3\xa9"};
    lm_gguf_write_arr_str(w, "tokenizer.ggml.tokens", tokens, 3);
    const float scores[3] = {0, -1.5f, -2};
    lm_gguf_write_arr(w, "tokenizer.ggml.scores", LM_GGUF_F32, scores, 3);
}

static void make_model(const struct spec *s, struct lm_buf *out, size_t *kv_len) {
    struct lm_gguf_writer w;
    lm_gguf_writer_init(&w);
    if (s->alignment) w.alignment = s->alignment;
    add_metadata(&w, s);
    *kv_len = w.kv.len;
    const int64_t E = s->n_embd, F = s->n_ff, Ekv = (int64_t)s->n_embd * s->n_head_kv / s->n_head;
    add_tensor(&w, s, "token_embd.weight", s->type, 2, E, s->n_vocab, 1);
    add_tensor(&w, s, "output_norm.weight", LM_TYPE_F32, 1, E, 1, 1);
    if (s->untied) add_tensor(&w, s, "output.weight", s->type, 2, E, s->n_vocab, 1);
    if (!s->no_data) add_tensor(&w, s, "rope_freqs.weight", LM_TYPE_F32, 2, 32, 1, 1); /* 1-D to ggml: kept, as [32] */
    for (int l = 0; l < s->n_layer; l++) {
        char name[64];
        const struct { const char *suffix; int64_t ne0, ne1; } mats[] = {
            {"attn_q", E, E}, {"attn_k", E, Ekv}, {"attn_v", E, Ekv}, {"attn_output", E, E},
            {"ffn_gate", E, F}, {"ffn_up", E, F}, {"ffn_down", F, E},
        };
        for (size_t m = 0; m < sizeof mats / sizeof mats[0]; m++) {
            const bool ffn = mats[m].suffix[0] == 'f';
            snprintf(name, sizeof name, "blk.%d.%s%s.weight", l, mats[m].suffix, ffn && s->n_expert ? "_exps" : "");
            if (ffn && s->n_expert) add_tensor(&w, s, name, s->type, 3, mats[m].ne0, mats[m].ne1, s->n_expert);
            else add_tensor(&w, s, name, s->type, 2, mats[m].ne0, mats[m].ne1, 1);
        }
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        add_tensor(&w, s, name, LM_TYPE_F32, 1, E, 1, 1);
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
        add_tensor(&w, s, name, LM_TYPE_F32, 1, E, 1, 1);
        if (s->n_expert) {
            snprintf(name, sizeof name, "blk.%d.ffn_gate_inp.weight", l);
            add_tensor(&w, s, name, LM_TYPE_F32, 2, E, s->n_expert, 1);
        }
    }
    lm_gguf_writer_finish(&w, out);
    lm_gguf_writer_free(&w);
}

static const struct spec base = {.arch = "llama", .n_layer = 8, .n_embd = 256, .n_ff = 512, .n_vocab = 64,
                                 .n_head = 4, .n_head_kv = 4, .type = LM_TYPE_F32};
static const struct spec plan_base = {.arch = "llama", .n_layer = 8, .n_embd = 256, .n_ff = 512, .n_vocab = 64,
                                      .n_head = 4, .n_head_kv = 4, .type = LM_TYPE_F32, .no_data = true};

/* The plan of a mix on a model: the type of each tensor by name. */
struct planned {
    struct lm_buf file;
    struct lm_gguf g;
    struct lm_quantize_plan p;
    int rc;
    struct lm_err err;
};

static void plan_of(struct planned *x, const struct spec *s, const char *mix, bool pure, bool leave_output) {
    size_t kv_len;
    memset(x, 0, sizeof *x);
    make_model(s, &x->file, &kv_len);
    EXPECT_EQ_INT(lm_gguf_parse(&x->g, x->file.data, x->file.len, &x->err), 0);
    const struct lm_quantize_opts o = {.mix = lm_quantize_mix_find(mix), .pure = pure, .leave_output = leave_output};
    LM_ASSERT(o.mix);
    x->rc = lm_quantize_plan(&x->p, &x->g, &o, &x->err);
}

static void planned_free(struct planned *x) {
    lm_quantize_plan_free(&x->p);
    lm_gguf_close(&x->g);
    lm_buf_free(&x->file);
}

/* The planned type of tensor `name`, or -1. */
static int type_of(const struct planned *x, const char *name) {
    for (uint64_t i = 0; i < x->p.n; i++)
        if (lm_gguf_str_eq(x->g.tensors[x->p.order[i]].name, name)) return (int)x->p.type[i];
    return -1;
}

static int layer_type(const struct planned *x, int l, const char *suffix) {
    char name[64];
    snprintf(name, sizeof name, "blk.%d.%s.weight", l, suffix);
    return type_of(x, name);
}

TEST(quantize_mix_names) {
    const struct { const char *name; uint32_t ftype; enum lm_type type; } want[] = {
        {"f32", 0, LM_TYPE_F32},       {"F16", 1, LM_TYPE_F16},       {"q4_0", 2, LM_TYPE_Q4_0},
        {"q4_1", 3, LM_TYPE_Q4_1},     {"Q8_0", 7, LM_TYPE_Q8_0},     {"q5_0", 8, LM_TYPE_Q5_0},
        {"q5_1", 9, LM_TYPE_Q5_1},     {"q2_k", 10, LM_TYPE_Q2_K},    {"q3_k_s", 11, LM_TYPE_Q3_K},
        {"q3_k_m", 12, LM_TYPE_Q3_K},  {"q3_k", 12, LM_TYPE_Q3_K},    {"q3_k_l", 13, LM_TYPE_Q3_K},
        {"q4_k_s", 14, LM_TYPE_Q4_K},  {"Q4_K_M", 15, LM_TYPE_Q4_K},  {"q4_k", 15, LM_TYPE_Q4_K},
        {"q5_k_s", 16, LM_TYPE_Q5_K},  {"q5_k_m", 17, LM_TYPE_Q5_K},  {"q5_k", 17, LM_TYPE_Q5_K},
        {"q6_k", 18, LM_TYPE_Q6_K},    {"bf16", 32, LM_TYPE_BF16},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct lm_quantize_mix *m = lm_quantize_mix_find(want[i].name);
        EXPECT(m != NULL);
        if (m) EXPECT(m->ftype == want[i].ftype && m->type == want[i].type);
    }
    size_t n = 0;
    while (lm_quantize_mix_at(n)) n++;
    EXPECT_EQ_INT(n, sizeof want / sizeof want[0]);
    EXPECT(!lm_quantize_mix_find("q4_k_x") && !lm_quantize_mix_find("iq2_xxs") && !lm_quantize_mix_find("q2_k_s"));
    return 0;
}

/* llama.cpp's rules, worked out by hand from src/llama-quant.cpp for 8
 * layers: use_more_bits picks layers 0, 3, 6 and 7; n/8 = 1; n/16 = 0. */
TEST(quantize_rules_by_layer) {
    struct planned x;
    const int more_bits[8] = {1, 0, 0, 1, 0, 0, 1, 1};
    plan_of(&x, &plan_base, "q4_k_m", false, false);
    EXPECT_EQ_INT(x.rc, 0);
    EXPECT_EQ_INT(type_of(&x, "token_embd.weight"), LM_TYPE_Q6_K); /* tied: the output's rule */
    EXPECT_EQ_INT(type_of(&x, "output_norm.weight"), LM_TYPE_F32);
    for (int l = 0; l < 8; l++) {
        EXPECT_EQ_INT(layer_type(&x, l, "attn_v"), more_bits[l] ? LM_TYPE_Q6_K : LM_TYPE_Q4_K);
        EXPECT_EQ_INT(layer_type(&x, l, "ffn_down"), more_bits[l] ? LM_TYPE_Q6_K : LM_TYPE_Q4_K);
        EXPECT_EQ_INT(layer_type(&x, l, "attn_q"), LM_TYPE_Q4_K);
        EXPECT_EQ_INT(layer_type(&x, l, "attn_output"), LM_TYPE_Q4_K);
        EXPECT_EQ_INT(layer_type(&x, l, "ffn_up"), LM_TYPE_Q4_K);
        EXPECT_EQ_INT(layer_type(&x, l, "attn_norm"), LM_TYPE_F32);
    }
    EXPECT_EQ_INT(x.p.n_fallback, 0);
    EXPECT_EQ_INT(x.p.requant, LM_TYPE_COUNT);
    planned_free(&x);

    plan_of(&x, &plan_base, "q4_k_s", false, false);
    for (int l = 0; l < 8; l++) {
        EXPECT_EQ_INT(layer_type(&x, l, "attn_v"), l < 4 ? LM_TYPE_Q5_K : LM_TYPE_Q4_K);
        EXPECT_EQ_INT(layer_type(&x, l, "ffn_down"), l < 1 ? LM_TYPE_Q5_K : LM_TYPE_Q4_K);
    }
    planned_free(&x);

    plan_of(&x, &plan_base, "q3_k_m", false, false);
    for (int l = 0; l < 8; l++) {
        EXPECT_EQ_INT(layer_type(&x, l, "attn_v"), l < 2 ? LM_TYPE_Q5_K : LM_TYPE_Q4_K);
        EXPECT_EQ_INT(layer_type(&x, l, "ffn_down"), LM_TYPE_Q4_K);
        EXPECT_EQ_INT(layer_type(&x, l, "attn_output"), LM_TYPE_Q4_K);
        EXPECT_EQ_INT(layer_type(&x, l, "ffn_gate"), LM_TYPE_Q3_K);
    }
    planned_free(&x);

    plan_of(&x, &plan_base, "q3_k_l", false, false);
    EXPECT(layer_type(&x, 5, "attn_v") == LM_TYPE_Q5_K && layer_type(&x, 5, "ffn_down") == LM_TYPE_Q5_K);
    EXPECT(layer_type(&x, 5, "attn_output") == LM_TYPE_Q5_K && layer_type(&x, 5, "attn_k") == LM_TYPE_Q3_K);
    planned_free(&x);

    plan_of(&x, &plan_base, "q5_k_m", false, false);
    for (int l = 0; l < 8; l++) EXPECT_EQ_INT(layer_type(&x, l, "ffn_down"), more_bits[l] ? LM_TYPE_Q6_K : LM_TYPE_Q5_K);
    planned_free(&x);

    plan_of(&x, &plan_base, "q5_k_s", false, false);
    EXPECT(layer_type(&x, 0, "attn_v") == LM_TYPE_Q5_K && type_of(&x, "token_embd.weight") == LM_TYPE_Q6_K);
    planned_free(&x);

    /* q2_k: attn_v q3_K without grouped-query attention, q4_K with 4 heads a group */
    plan_of(&x, &plan_base, "q2_k", false, false);
    EXPECT(layer_type(&x, 3, "attn_v") == LM_TYPE_Q3_K && layer_type(&x, 3, "ffn_down") == LM_TYPE_Q3_K);
    EXPECT(layer_type(&x, 3, "attn_output") == LM_TYPE_Q3_K && layer_type(&x, 3, "attn_q") == LM_TYPE_Q2_K);
    planned_free(&x);
    struct spec gqa = plan_base;
    gqa.n_head = 8, gqa.n_head_kv = 2;
    plan_of(&x, &gqa, "q2_k", false, false);
    EXPECT_EQ_INT(layer_type(&x, 3, "attn_v"), LM_TYPE_Q4_K);
    planned_free(&x);
    return 0;
}

TEST(quantize_rules_output_pure_leave) {
    struct planned x;
    struct spec s = plan_base;
    s.untied = true;
    plan_of(&x, &s, "q4_k_m", false, false);
    EXPECT(type_of(&x, "output.weight") == LM_TYPE_Q6_K && type_of(&x, "token_embd.weight") == LM_TYPE_Q4_K);
    planned_free(&x);
    plan_of(&x, &s, "q4_k_m", false, true);
    EXPECT(type_of(&x, "output.weight") == LM_TYPE_F32 && type_of(&x, "token_embd.weight") == LM_TYPE_Q4_K);
    planned_free(&x);
    plan_of(&x, &s, "q4_k_m", true, false);
    for (uint64_t i = 0; i < x.p.n; i++)
        EXPECT_EQ_INT(x.p.type[i], x.g.tensors[x.p.order[i]].t.n_dims == 1 ? LM_TYPE_F32 : LM_TYPE_Q4_K);
    planned_free(&x);
    plan_of(&x, &plan_base, "q8_0", false, false); /* the output's rule keeps q8_0 */
    EXPECT(type_of(&x, "token_embd.weight") == LM_TYPE_Q8_0 && layer_type(&x, 0, "attn_v") == LM_TYPE_Q8_0);
    planned_free(&x);
    plan_of(&x, &plan_base, "q4_0", false, false);
    EXPECT(type_of(&x, "token_embd.weight") == LM_TYPE_Q6_K && layer_type(&x, 0, "attn_v") == LM_TYPE_Q4_0);
    planned_free(&x);
    plan_of(&x, &plan_base, "f16", false, false); /* float formats: no rules */
    EXPECT(type_of(&x, "token_embd.weight") == LM_TYPE_F16 && type_of(&x, "output_norm.weight") == LM_TYPE_F32);
    planned_free(&x);
    return 0;
}

/* Rows of 96 divide into 32 but not 256; rows of 48 into neither. */
TEST(quantize_rules_fallback) {
    struct planned x;
    struct spec s = plan_base;
    s.n_embd = 96, s.n_head = 3, s.n_head_kv = 3;
    plan_of(&x, &s, "q4_k_m", false, false);
    EXPECT_EQ_INT(type_of(&x, "token_embd.weight"), LM_TYPE_Q8_0);   /* the output's rule: not q6_K */
    EXPECT_EQ_INT(layer_type(&x, 0, "attn_v"), LM_TYPE_Q8_0);        /* q6_K falls back */
    EXPECT_EQ_INT(layer_type(&x, 1, "attn_v"), LM_TYPE_Q5_0);        /* q4_K falls back */
    EXPECT_EQ_INT(layer_type(&x, 1, "ffn_down"), LM_TYPE_Q4_K);      /* rows of n_ff = 512 */
    EXPECT_EQ_INT(x.p.n_fallback, 8 * 6); /* not token_embd: the output's rule picked q8_0 */
    planned_free(&x);
    const struct { const char *mix; enum lm_type want; } fb[] = {
        {"q2_k", LM_TYPE_Q4_0}, {"q3_k_s", LM_TYPE_Q4_0}, {"q5_k_s", LM_TYPE_Q5_1}, {"q6_k", LM_TYPE_Q8_0},
    };
    for (size_t i = 0; i < sizeof fb / sizeof fb[0]; i++) {
        plan_of(&x, &s, fb[i].mix, false, false);
        EXPECT_EQ_INT(layer_type(&x, 4, "attn_q"), fb[i].want);
        planned_free(&x);
    }
    s.n_embd = 48;
    plan_of(&x, &s, "q4_0", false, false);
    EXPECT(layer_type(&x, 0, "attn_q") == LM_TYPE_F16 && layer_type(&x, 0, "ffn_down") == LM_TYPE_Q4_0);
    EXPECT_EQ_INT(type_of(&x, "token_embd.weight"), LM_TYPE_F16); /* q8_0, then f16 */
    planned_free(&x);
    return 0;
}

/* Order: tensors outside layers first, then by layer number (10 after 9),
 * then by name. */
TEST(quantize_rules_order_70b_experts) {
    struct planned x;
    struct spec s = plan_base;
    s.n_layer = 12;
    plan_of(&x, &s, "q8_0", false, false);
    int64_t last_layer = -1;
    for (uint64_t i = 0; i < x.p.n; i++) {
        const struct lm_gguf_str n = x.g.tensors[x.p.order[i]].name;
        const int64_t layer = n.len > 4 && !memcmp(n.data, "blk.", 4) ? strtol(n.data + 4, NULL, 10) : -1;
        EXPECT(layer >= last_layer);
        last_layer = layer;
    }
    EXPECT(lm_gguf_str_eq(x.g.tensors[x.p.order[0]].name, "output_norm.weight"));
    EXPECT(lm_gguf_str_eq(x.g.tensors[x.p.order[1]].name, "token_embd.weight"));
    EXPECT(lm_gguf_str_eq(x.g.tensors[x.p.order[2]].name, "blk.0.attn_k.weight"));
    EXPECT(lm_gguf_str_eq(x.g.tensors[x.p.order[x.p.n - 1]].name, "blk.11.ffn_up.weight"));
    planned_free(&x);

    /* A llama of 80 layers with grouped-query attention is a 70B: q3_K and
     * q4_K attn_v become q5_K. */
    s = plan_base;
    s.n_layer = 80, s.n_embd = 256, s.n_ff = 256, s.n_head = 8, s.n_head_kv = 1, s.no_data = true;
    plan_of(&x, &s, "q3_k_m", false, false);
    EXPECT(layer_type(&x, 0, "attn_v") == LM_TYPE_Q5_K && layer_type(&x, 40, "attn_v") == LM_TYPE_Q5_K);
    EXPECT(layer_type(&x, 0, "ffn_down") == LM_TYPE_Q5_K && layer_type(&x, 40, "ffn_down") == LM_TYPE_Q4_K);
    planned_free(&x);

    /* 8 experts: attn_v and attn_k q8_0, attn_output q5_K, the 3-D expert
     * tensors by their layer, the router kept */
    s = plan_base;
    s.n_expert = 8, s.no_data = true;
    plan_of(&x, &s, "q4_k_m", false, false);
    EXPECT(layer_type(&x, 2, "attn_v") == LM_TYPE_Q8_0 && layer_type(&x, 2, "attn_k") == LM_TYPE_Q8_0);
    EXPECT_EQ_INT(layer_type(&x, 2, "attn_output"), LM_TYPE_Q5_K);
    EXPECT(layer_type(&x, 3, "ffn_down_exps") == LM_TYPE_Q6_K && layer_type(&x, 2, "ffn_down_exps") == LM_TYPE_Q4_K);
    EXPECT_EQ_INT(layer_type(&x, 2, "ffn_gate_inp"), LM_TYPE_F32);
    planned_free(&x);
    return 0;
}

/* The plan for the default model, tensor for tensor, is llama-quantize's
 * (tests/data/quantize-types.txt, read from its output files). */
TEST(quantize_plan_matches_llamacpp) {
    const char *model = test_model_path();
    if (!model) return test_skip("no default model (scripts/get-model.sh)");
    struct lm_buf file = {0};
    struct lm_err err;
    EXPECT_EQ_INT(lm_read_file("tests/data/quantize-types.txt", &file, &err), 0);
    struct lm_gguf g;
    EXPECT_EQ_INT(lm_gguf_open(&g, model, &err), 0);
    char *names[1024];
    int n_names = 0, n_mixes = 0;
    for (char *line = strtok(file.data, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        char *sp = strchr(line, ' ');
        LM_ASSERT(sp);
        *sp = 0;
        if (!strcmp(line, "names")) {
            for (char *nm = strtok_r(sp + 1, " ", &sp); nm && n_names < 1024; nm = strtok_r(NULL, " ", &sp)) names[n_names++] = nm;
            continue;
        }
        struct lm_quantize_plan p;
        const struct lm_quantize_opts o = {.mix = lm_quantize_mix_find(line)};
        EXPECT(o.mix != NULL);
        if (!o.mix || lm_quantize_plan(&p, &g, &o, &err) < 0) continue;
        EXPECT_EQ_INT(p.n, n_names);
        char *id = sp + 1;
        for (uint64_t i = 0; i < p.n && i < (uint64_t)n_names; i++) {
            const long want = strtol(id, &id, 10);
            const struct lm_gguf_str nm = g.tensors[p.order[i]].name;
            if (!lm_gguf_str_eq(nm, names[i]) || p.type[i] != want) {
                test_fail(__FILE__, __LINE__, "%s: tensor %llu is %.*s as %s, llama-quantize's %s as %s", line,
                          (unsigned long long)i, (int)nm.len, nm.data, lm_type_get(p.type[i])->name, names[i],
                          lm_type_get((uint32_t)want) ? lm_type_get((uint32_t)want)->name : "?");
                break;
            }
        }
        lm_quantize_plan_free(&p);
        n_mixes++;
    }
    EXPECT_EQ_INT(n_mixes, 17);
    lm_gguf_close(&g);
    lm_buf_free(&file);
    return 0;
}

/* ---- round trips -------------------------------------------------------- */

/* The largest |error| a format allows, as a fraction of the largest |x| of
 * its block (for the float formats, of |x| itself, or of the smallest
 * normal f16 below it): one step of its 2^bits levels over [-amax, amax],
 * which covers rounding (half a step) and the top level a symmetric format
 * clamps; the k formats get half a step more, since their sub-block scales
 * are quantized too. */
static double error_bound(enum lm_type t) {
    const bool k = t == LM_TYPE_Q2_K || t == LM_TYPE_Q3_K || t == LM_TYPE_Q4_K || t == LM_TYPE_Q5_K || t == LM_TYPE_Q6_K;
    int bits;
    switch (t) {
    case LM_TYPE_F32: return 0;
    case LM_TYPE_F16: return 0x1p-11;
    case LM_TYPE_BF16: return 0x1p-8;
    case LM_TYPE_Q8_0: bits = 8; break;
    case LM_TYPE_Q6_K: bits = 6; break;
    case LM_TYPE_Q5_0: case LM_TYPE_Q5_1: case LM_TYPE_Q5_K: bits = 5; break;
    case LM_TYPE_Q4_0: case LM_TYPE_Q4_1: case LM_TYPE_Q4_K: bits = 4; break;
    case LM_TYPE_Q3_K: bits = 3; break;
    case LM_TYPE_Q2_K: bits = 2; break;
    default: LM_ASSERT(!"no bound"); return 0;
    }
    return (k ? 1.5 : 1.0) * 2.0 / ((1 << bits) - 1);
}

/* The worst error of y against x in units of error_bound(t). */
static double worst_error(enum lm_type t, const float *x, const float *y, int64_t n) {
    const int blck = t == LM_TYPE_F32 || t == LM_TYPE_F16 || t == LM_TYPE_BF16 ? 1 : lm_type_get(t)->blck;
    double worst = 0;
    for (int64_t b = 0; b < n; b += blck) {
        double amax = 0, emax = 0;
        for (int64_t j = b; j < b + blck; j++) {
            amax = fmax(amax, t == LM_TYPE_F16 ? fmax(fabs(x[j]), 0x1p-14) : fabs(x[j]));
            emax = fmax(emax, fabs((double)x[j] - y[j]));
        }
        if (emax == 0) continue;
        const double bound = error_bound(t) * amax;
        worst = fmax(worst, bound > 0 ? emax / bound : INFINITY);
    }
    return worst;
}

static int quantize_to_file(const struct lm_gguf *in, const struct lm_quantize_opts *o, const char *path,
                            struct lm_pool *pool, size_t slab_bytes, struct lm_quantize_plan *p,
                            struct lm_quantize_stats *st, int *code, struct lm_err *err) {
    if (lm_quantize_plan(p, in, o, err) < 0) return -1;
    const int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    LM_ASSERT(fd >= 0);
    const struct lm_quantize_run run = {.pool = pool, .slab_bytes = slab_bytes};
    const int rc = lm_quantize_write(in, p, o, fd, &run, st, code, err);
    close(fd);
    return rc;
}

/* Checks out against in: metadata, order, 1-D tensors, every tensor's data
 * equal to the reference quantizer's output of in's values, and within its
 * format's error bound. Returns the worst error (units of the bound). */
static double check_output(const struct lm_buf *in_file, size_t kv_len, const struct lm_gguf *in,
                           const struct lm_gguf *out, const struct lm_quantize_plan *p, const struct lm_quantize_mix *m) {
    EXPECT(out->n_tensors == in->n_tensors && out->n_kv == in->n_kv + 2);
    EXPECT_EQ_INT(out->alignment, in->alignment);
    /* every key copied, byte for byte, then the two llama.cpp sets */
    EXPECT(out->size > 24 + kv_len && memcmp(out->buf + 24, in_file->data + 24, kv_len) == 0);
    EXPECT(lm_gguf_str_eq(out->kv[out->n_kv - 2].key, "general.quantization_version") &&
           out->kv[out->n_kv - 2].value.type == LM_GGUF_U32 && out->kv[out->n_kv - 2].value.u64 == 2);
    EXPECT(lm_gguf_str_eq(out->kv[out->n_kv - 1].key, "general.file_type") &&
           out->kv[out->n_kv - 1].value.type == LM_GGUF_U32 && out->kv[out->n_kv - 1].value.u64 == m->ftype);
    double worst = 0;
    for (uint64_t i = 0; i < out->n_tensors && i < p->n; i++) {
        const struct lm_gguf_tensor *o = &out->tensors[i], *t = &in->tensors[p->order[i]];
        EXPECT(o->name.len == t->name.len && memcmp(o->name.data, t->name.data, t->name.len) == 0);
        EXPECT(o->t.type == p->type[i] && o->t.n_dims == (t->t.ne[1] > 1 ? t->t.n_dims : 1));
        EXPECT(memcmp(o->t.ne, t->t.ne, sizeof o->t.ne) == 0);
        if (o->t.n_dims == 1) EXPECT(o->t.type == LM_TYPE_F32 && o->size == t->size && !memcmp(o->t.data, t->t.data, t->size));
        if (o->t.type != p->type[i] || memcmp(o->t.ne, t->t.ne, sizeof o->t.ne)) continue;
        const int64_t n = o->t.ne[0] * o->t.ne[1] * o->t.ne[2] * o->t.ne[3];
        const struct lm_type_traits *from = lm_type_get_ref(t->t.type), *to = lm_type_get_ref(o->t.type);
        float *x = lm_xmalloc((size_t)n * sizeof(float)), *y = lm_xmalloc((size_t)n * sizeof(float));
        uint8_t *want = lm_xmalloc(o->size);
        from->to_f32(t->t.data, x, n);
        if (o->t.type == t->t.type) memcpy(want, t->t.data, t->size);
        else to->from_f32(x, want, n);
        if (memcmp(want, o->t.data, o->size) != 0)
            test_fail(__FILE__, __LINE__, "%s: %.*s (%s) differs from the reference quantizer's", m->name,
                      (int)o->name.len, o->name.data, to->name);
        to->to_f32(o->t.data, y, n);
        worst = fmax(worst, worst_error(o->t.type, x, y, n));
        free(x);
        free(y);
        free(want);
    }
    return worst;
}

TEST(quantize_round_trip_every_type) {
    struct spec s = base;
    s.n_layer = 2, s.alignment = 64;
    struct lm_buf file = {0};
    size_t kv_len;
    rng_state = 1;
    make_model(&s, &file, &kv_len);
    struct lm_gguf in;
    struct lm_err err;
    EXPECT_EQ_INT(lm_gguf_parse(&in, file.data, file.len, &err), 0);
    struct lm_pool *pool = lm_pool_create(2);
    for (size_t k = 0; lm_quantize_mix_at(k); k++) {
        const struct lm_quantize_mix *m = lm_quantize_mix_at(k);
        bool alias = false; /* q4_k is q4_k_m */
        for (size_t j = 0; j < k; j++) alias = alias || lm_quantize_mix_at(j)->ftype == m->ftype;
        if (alias) continue;
        const struct lm_quantize_opts o = {.mix = m};
        struct lm_quantize_plan p;
        struct lm_quantize_stats st;
        int code = -1;
        const char *path = test_tmp_path(".gguf");
        /* slabs of a few rows, so rows meet slab and task boundaries */
        const int rc = quantize_to_file(&in, &o, path, pool, 3000, &p, &st, &code, &err);
        EXPECT_EQ_INT(rc, 0);
        EXPECT_EQ_INT(code, LM_EXIT_OK);
        if (rc) fprintf(stderr, "  %s: %s\n", m->name, err.msg);
        struct lm_gguf out;
        if (rc == 0 && lm_gguf_open(&out, path, &err) == 0) {
            EXPECT_EQ_INT(st.file_bytes, out.size);
            EXPECT_EQ_INT(out.size % 64, 0);
            const double worst = check_output(&file, kv_len, &in, &out, &p, m);
            if (worst > 1) test_fail(__FILE__, __LINE__, "%s: an error %.2f times the format's bound", m->name, worst);
            if (test_verbose) printf("  %-7s worst error %.3f of the bound, %llu bytes\n", m->name, worst,
                                     (unsigned long long)out.size);
            lm_gguf_close(&out);
        } else if (rc == 0) {
            test_fail(__FILE__, __LINE__, "%s: output does not parse: %s", m->name, err.msg);
        }
        lm_quantize_plan_free(&p);
    }
    lm_pool_free(pool);
    lm_gguf_close(&in);
    lm_buf_free(&file);
    return 0;
}

/* A quantized input is dequantized, then quantized again; the same with
 * one thread and no pool as with two. */
TEST(quantize_requantize) {
    struct spec s = base;
    s.n_layer = 1, s.type = LM_TYPE_Q8_0;
    struct lm_buf file = {0};
    size_t kv_len;
    rng_state = 2;
    make_model(&s, &file, &kv_len);
    struct lm_gguf in, out;
    struct lm_err err;
    EXPECT_EQ_INT(lm_gguf_parse(&in, file.data, file.len, &err), 0);
    const struct lm_quantize_opts o = {.mix = lm_quantize_mix_find("q4_0")};
    struct lm_quantize_plan p;
    struct lm_quantize_stats st;
    int code;
    const char *path = test_tmp_path(".gguf");
    EXPECT_EQ_INT(quantize_to_file(&in, &o, path, NULL, 0, &p, &st, &code, &err), 0);
    EXPECT_EQ_INT(p.requant, LM_TYPE_Q8_0);
    if (lm_gguf_open(&out, path, &err) == 0) {
        check_output(&file, kv_len, &in, &out, &p, o.mix);
        lm_gguf_close(&out);
    }
    lm_quantize_plan_free(&p);
    lm_gguf_close(&in);
    lm_buf_free(&file);
    return 0;
}

/* Values a format cannot hold are refused with the tensor and row named. */
TEST(quantize_refuses_nan_and_overflow) {
    struct spec s = base;
    s.n_layer = 1;
    struct lm_buf file = {0};
    size_t kv_len;
    make_model(&s, &file, &kv_len);
    struct lm_gguf in;
    struct lm_err err;
    EXPECT_EQ_INT(lm_gguf_parse(&in, file.data, file.len, &err), 0);
    const struct lm_gguf_tensor *t = lm_gguf_find_tensor(&in, "blk.0.attn_k.weight");
    LM_ASSERT(t && t->t.type == LM_TYPE_F32);
    float *x = (float *)t->t.data; /* into our own buffer */
    const float nan = NAN, big = 1e6f;
    memcpy(&x[3 * 256 + 5], &nan, 4);
    struct lm_quantize_plan p;
    struct lm_quantize_stats st;
    int code;
    struct lm_quantize_opts o = {.mix = lm_quantize_mix_find("q4_k_m")};
    EXPECT_EQ_INT(quantize_to_file(&in, &o, test_tmp_path(".gguf"), NULL, 0, &p, &st, &code, &err), -1);
    EXPECT_EQ_INT(code, LM_EXIT_MODEL);
    EXPECT_CONTAINS(err.msg, "tensor 'blk.0.attn_k.weight': row 3 holds NaN or infinity");
    lm_quantize_plan_free(&p);
    memcpy(&x[3 * 256 + 5], &big, 4);
    o.mix = lm_quantize_mix_find("f16");
    EXPECT_EQ_INT(quantize_to_file(&in, &o, test_tmp_path(".gguf"), NULL, 0, &p, &st, &code, &err), -1);
    EXPECT_EQ_INT(code, LM_EXIT_MODEL);
    EXPECT_CONTAINS(err.msg, "tensor 'blk.0.attn_k.weight': row 3 has values too large for f16");
    lm_quantize_plan_free(&p);
    lm_gguf_close(&in);
    lm_buf_free(&file);
    return 0;
}

/* One part of a split model is refused; a model in one part loses the
 * split keys, as llama.cpp's output does. */
TEST(quantize_split_models) {
    const uint16_t one = 1, three = 3;
    for (int parts = 1; parts <= 3; parts += 2) {
        struct lm_gguf_writer w;
        lm_gguf_writer_init(&w);
        lm_gguf_write_str(&w, "general.architecture", "llama");
        struct lm_buf raw = {0};
        lm_gguf_put_u32(&raw, LM_GGUF_U16);
        lm_buf_append(&raw, parts == 1 ? &one : &three, 2);
        lm_gguf_write_raw(&w, "split.count", raw.data, raw.len);
        lm_buf_free(&raw);
        lm_gguf_write_i32(&w, "split.tensors.count", 1);
        float x[64] = {0};
        const int64_t ne[2] = {32, 2};
        lm_gguf_write_tensor(&w, "a.weight", LM_TYPE_F32, 2, ne, x);
        struct lm_buf file = {0};
        lm_gguf_writer_finish(&w, &file);
        lm_gguf_writer_free(&w);
        struct lm_gguf in, out;
        struct lm_err err;
        EXPECT_EQ_INT(lm_gguf_parse(&in, file.data, file.len, &err), 0);
        const struct lm_quantize_opts o = {.mix = lm_quantize_mix_find("q8_0")};
        struct lm_quantize_plan p;
        struct lm_quantize_stats st;
        int code;
        const char *path = test_tmp_path(".gguf");
        const int rc = quantize_to_file(&in, &o, path, NULL, 0, &p, &st, &code, &err);
        if (parts == 3) {
            EXPECT_EQ_INT(rc, -1);
            EXPECT_CONTAINS(err.msg, "part of a model split in 3 files");
        } else if (rc == 0 && lm_gguf_open(&out, path, &err) == 0) {
            EXPECT(!lm_gguf_get(&out, "split.count") && !lm_gguf_get(&out, "split.tensors.count"));
            EXPECT(out.n_kv == 3 && lm_gguf_find_tensor(&out, "a.weight")->t.type == LM_TYPE_Q8_0);
            lm_gguf_close(&out);
        } else {
            test_fail(__FILE__, __LINE__, "one part: %s", err.msg);
        }
        lm_quantize_plan_free(&p);
        lm_gguf_close(&in);
        lm_buf_free(&file);
    }
    return 0;
}

/* ---- the command -------------------------------------------------------- */

static const char *lm_bin(void) {
    const char *b = getenv("LM_BIN");
    return b && *b ? b : "./lm";
}

/* A fresh folder holding in.gguf (the spec's model); returns its path. */
static const char *folder_with_model(const struct spec *s, char *dir, size_t cap) {
    snprintf(dir, cap, "%s", test_tmp_path(".d"));
    LM_ASSERT(mkdir(dir, 0755) == 0);
    struct lm_buf file = {0};
    size_t kv_len;
    make_model(s, &file, &kv_len);
    char path[600];
    snprintf(path, sizeof path, "%s/in.gguf", dir);
    FILE *f = fopen(path, "wb");
    LM_ASSERT(f && fwrite(file.data, 1, file.len, f) == file.len && fclose(f) == 0);
    lm_buf_free(&file);
    return dir;
}

/* Names in dir other than in.gguf and the given one, joined by spaces. */
static const char *others_in(const char *dir, const char *keep) {
    static char names[1024];
    names[0] = 0;
    DIR *d = opendir(dir);
    LM_ASSERT(d);
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "in.gguf") &&
            (!keep || strcmp(e->d_name, keep))) {
            strncat(names, e->d_name, sizeof names - strlen(names) - 2);
            strcat(names, " ");
        }
    closedir(d);
    return names;
}

static bool read_all(const char *path, struct lm_buf *b) {
    struct lm_err e;
    b->len = 0;
    return lm_read_file(path, b, &e) == 0;
}

static int count_lines(const struct lm_buf *b) {
    int n = 0;
    for (size_t i = 0; i < b->len; i++) n += b->data[i] == '\n';
    return n;
}

TEST(quantize_cli_writes_and_refuses_to_overwrite) {
    struct spec s = base;
    s.n_layer = 2;
    char dir[512], args[2048];
    folder_with_model(&s, dir, sizeof dir);
    struct lm_buf out = {0}, err = {0}, first = {0}, again = {0};
    snprintf(args, sizeof args, "quantize %s/in.gguf %s/out.gguf q4_k_m -t 2", dir, dir);
    EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &err), 0);
    EXPECT(out.len == 0);
    EXPECT_CONTAINS(err.data, "wrote ");
    EXPECT_CONTAINS(err.data, "bits per weight");
    char path[600];
    snprintf(path, sizeof path, "%s/out.gguf", dir);
    struct lm_gguf g;
    struct lm_err e;
    EXPECT_EQ_INT(lm_gguf_open(&g, path, &e), 0);
    uint64_t ft = 0;
    EXPECT(lm_gguf_get_uint(&g, "general.file_type", &ft, &e) == 1 && ft == 15);
    lm_gguf_close(&g);
    struct stat st;
    EXPECT(stat(path, &st) == 0 && (st.st_mode & 0777) != 0600); /* not mkstemp's mode */
    EXPECT(read_all(path, &first));

    EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &err), LM_EXIT_USAGE);
    EXPECT_CONTAINS(err.data, "out.gguf exists (--force overwrites it)");
    EXPECT_EQ_INT(count_lines(&err), 1);
    EXPECT(read_all(path, &again) && again.len == first.len && !memcmp(again.data, first.data, first.len));

    snprintf(args, sizeof args, "quantize %s/in.gguf %s/out.gguf q8_0 --force", dir, dir);
    EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &err), 0);
    EXPECT_EQ_INT(lm_gguf_open(&g, path, &e), 0);
    EXPECT(lm_gguf_get_uint(&g, "general.file_type", &ft, &e) == 1 && ft == 7);
    lm_gguf_close(&g);
    EXPECT_EQ_STR(others_in(dir, "out.gguf"), ""); /* no temporary file left */

    snprintf(args, sizeof args, "quantize %s/in.gguf %s q8_0 --force", dir, dir);
    EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &err), LM_EXIT_USAGE);
    EXPECT_CONTAINS(err.data, "is a folder");
    snprintf(args, sizeof args, "quantize %s/in.gguf %s/x.gguf q9_9", dir, dir);
    EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &err), LM_EXIT_USAGE);
    EXPECT_CONTAINS(err.data, "unknown TYPE 'q9_9'");
    EXPECT_EQ_INT(test_run_lm("quantize a.gguf", NULL, &out, &err), LM_EXIT_USAGE);
    EXPECT_EQ_INT(test_run_lm("help quantize", NULL, &out, &err), 0);
    EXPECT_CONTAINS(out.data, "usage: lm quantize IN.gguf OUT.gguf TYPE");
    lm_buf_free(&out);
    lm_buf_free(&err);
    lm_buf_free(&first);
    lm_buf_free(&again);
    return 0;
}

TEST(quantize_cli_bad_input) {
    char dir[512], args[2048];
    snprintf(dir, sizeof dir, "%s", test_tmp_path(".d"));
    LM_ASSERT(mkdir(dir, 0755) == 0);
    char path[600];
    snprintf(path, sizeof path, "%s/in.gguf", dir);
    FILE *f = fopen(path, "wb");
    LM_ASSERT(f && fputs("this is not a model, only some text to fill a few bytes\n", f) >= 0 && fclose(f) == 0);
    struct lm_buf out = {0}, err = {0};
    snprintf(args, sizeof args, "quantize %s %s/out.gguf q4_0", path, dir);
    EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &err), LM_EXIT_MODEL);
    EXPECT_CONTAINS(err.data, "in.gguf: not a GGUF file (bad magic)");
    EXPECT_EQ_INT(count_lines(&err), 1);
    snprintf(args, sizeof args, "quantize %s/missing.gguf %s/out.gguf q4_0", dir, dir);
    EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &err), LM_EXIT_MODEL);
    EXPECT_CONTAINS(err.data, "missing.gguf: No such file or directory");
    EXPECT_EQ_INT(count_lines(&err), 1);
    /* a model cut short */
    struct spec s = base;
    s.n_layer = 1;
    struct lm_buf file = {0};
    size_t kv_len;
    make_model(&s, &file, &kv_len);
    f = fopen(path, "wb");
    LM_ASSERT(f && fwrite(file.data, 1, file.len - 100, f) == file.len - 100 && fclose(f) == 0);
    snprintf(args, sizeof args, "quantize %s %s/out.gguf q4_0", path, dir);
    EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &err), LM_EXIT_MODEL);
    EXPECT_CONTAINS(err.data, "runs past the end of the file");
    EXPECT_EQ_INT(count_lines(&err), 1);
    EXPECT_EQ_STR(others_in(dir, NULL), "");
    lm_buf_free(&file);
    lm_buf_free(&out);
    lm_buf_free(&err);
    return 0;
}

/* lm quantize DIR/in.gguf DIR/out.gguf ARGS... as a child whose stderr goes
 * to DIR/err, with a file-size limit when fsize > 0. */
static pid_t spawn_quantize(const char *dir, const char *type, const char *threads, rlim_t fsize) {
    char in[600], out[600], err[600];
    snprintf(in, sizeof in, "%s/in.gguf", dir);
    snprintf(out, sizeof out, "%s/out.gguf", dir);
    snprintf(err, sizeof err, "%s/../%s.err", dir, strrchr(dir, '/') + 1);
    fflush(NULL);
    const pid_t pid = fork();
    LM_ASSERT(pid >= 0);
    if (pid == 0) {
        const int fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644), nul = open("/dev/null", O_RDWR);
        if (fd < 0 || nul < 0 || dup2(fd, 2) < 0 || dup2(nul, 1) < 0 || dup2(nul, 0) < 0) _exit(126);
        if (fsize) {
            const struct rlimit rl = {fsize, fsize};
            if (setrlimit(RLIMIT_FSIZE, &rl) < 0) _exit(126);
        }
        execl(lm_bin(), lm_bin(), "quantize", in, out, type, "--pure", "--threads", threads, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int wait_status(pid_t pid) {
    int status;
    LM_ASSERT(waitpid(pid, &status, 0) == pid);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

static void read_child_err(const char *dir, struct lm_buf *b) {
    char err[600];
    snprintf(err, sizeof err, "%s/../%s.err", dir, strrchr(dir, '/') + 1);
    EXPECT(read_all(err, b));
}

/* A disk that fills, made deterministic as a file-size limit: the write
 * fails (EFBIG), and neither OUT nor the temporary file is left. */
TEST(quantize_cli_full_disk) {
    struct spec s = base;
    s.n_layer = 4; /* about 6 MB of f32 in, 1.7 MB of q8_0 out */
    char dir[512];
    folder_with_model(&s, dir, sizeof dir);
    const pid_t pid = spawn_quantize(dir, "q8_0", "2", 256 << 10);
    EXPECT_EQ_INT(wait_status(pid), LM_EXIT_RUNTIME);
    struct lm_buf err = {0};
    read_child_err(dir, &err);
    EXPECT_CONTAINS(err.data, "out.gguf: cannot write: File too large; the file is left as it was");
    EXPECT_EQ_INT(count_lines(&err), 1);
    EXPECT_EQ_STR(others_in(dir, NULL), "");
    lm_buf_free(&err);
    return 0;
}

static bool has_temp_file(const char *dir) {
    DIR *d = opendir(dir);
    bool found = false;
    for (struct dirent *e; d && (e = readdir(d));) found = found || !strncmp(e->d_name, "out.gguf.tmp-", 13);
    if (d) closedir(d);
    return found;
}

/* Ctrl-C once the output is being written: exit 130, nothing left. The
 * model is large enough (32 MiB of f32 to q2_K on one thread) that the
 * signal lands long before the end; a run that ends first fails the test
 * rather than passing unchecked. */
TEST(quantize_cli_interrupt) {
    struct spec s = {.arch = "llama", .n_layer = 1, .n_embd = 2048, .n_ff = 1536, .n_vocab = 256, .n_head = 8,
                     .n_head_kv = 8, .type = LM_TYPE_F32};
    char dir[512];
    rng_state = 3;
    folder_with_model(&s, dir, sizeof dir);
    const pid_t pid = spawn_quantize(dir, "q2_k", "1", 0);
    struct timespec pause = {0, 1000000};
    bool seen = false;
    for (int i = 0; i < 20000 && !seen; i++) {
        seen = has_temp_file(dir);
        if (!seen) nanosleep(&pause, NULL);
    }
    EXPECT(seen);
    kill(pid, SIGINT);
    const int rc = wait_status(pid);
    struct lm_buf err = {0};
    read_child_err(dir, &err);
    if (rc == 0) test_fail(__FILE__, __LINE__, "quantize finished before the signal: make the model larger");
    EXPECT_EQ_INT(rc, LM_EXIT_INTERRUPT);
    EXPECT_CONTAINS(err.data, "lm: interrupted: ");
    EXPECT_CONTAINS(err.data, "out.gguf was not written");
    EXPECT_EQ_STR(others_in(dir, NULL), "");
    lm_buf_free(&err);
    return 0;
}

/* The default model requantized to a k-quant mix loads and generates. */
TEST(quantize_cli_default_model_runs) {
    const char *model = test_model_path();
    if (!model) return test_skip("no default model (scripts/get-model.sh)");
    char args[1024], path[512];
    snprintf(path, sizeof path, "%s", test_tmp_path(".gguf")); /* test_run_lm reuses the buffer */
    struct lm_buf out = {0}, err = {0};
    snprintf(args, sizeof args, "quantize '%s' '%s' q4_k_m", model, path);
    EXPECT_EQ_INT(test_run_lm(args, NULL, &out, &err), 0);
    EXPECT_CONTAINS(err.data, "warning: "); /* its weights are q4_1 */
    EXPECT_CONTAINS(err.data, "are dequantized first");
    snprintf(args, sizeof args, "run -m '%s' -n 8 --temp 0 -q", path);
    EXPECT_EQ_INT(test_run_lm(args, "The capital of France is", &out, &err), 0);
    EXPECT(out.len > 0);
    lm_buf_free(&out);
    lm_buf_free(&err);
    return 0;
}
