/* page.c: the chat page served at GET / (placeholder until the page lands). */
#include "serve_int.h"

const char lm_serve_page[] = "<!doctype html><title>lm</title><p>lm serve</p>\n";
