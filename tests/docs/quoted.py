"""The README's figures that are quoted from a JSON file under assets/results/, as the README writes them.

Each template is a piece of README text with a field for each figure: `{path|function:format}`. The path names the
value in the file: keys and list indexes joined by dots (-1 is the last item); a key may be a pattern (`*`, `?`),
which makes it the list of every matching value (`*` on a list: every item; `?` also stands for a `:`, which cannot
be written in a field). Functions, in order: min, max, sum, minutes (from seconds), thousands (rounded to the nearest
thousand), change (a ratio as a percent change: +5.5 for 1.055), fall (the same, down: 2.9 for 0.971). Format is
Python's format spec. test_readme_quotes renders each template from its file and looks for the text in the README,
line breaks and runs of spaces counting as one space. After a result file changes, rewrite the README's figures
(tables between results markers: `python tools/readme_results.py`); when the wording changes, change the template
here.
"""

QUOTES = {
    "near_duplicates.json": [
        "of {variants:,} known variants of {licences:,} licences",
        "MinHash catches **{minhash_caught:,} ({minhash_caught_percent:.1f}%)**; the earlier bottom-8 sketch key "
        "caught {sketch_caught:,} ({sketch_caught_percent:.0f}%)",
        "it keeps {minhash_kept:,} of {licence_texts:,} texts (the sketch kept {sketch_kept:,})",
    ],
    "overlap.json": [
        "{domains.biomed.test.percent_in_train:.1f}% also occur in train on biomed, "
        "{domains.finance.test.percent_in_train:.1f}% on finance and {domains.law.test.percent_in_train:.1f}% on law",
        "(of distinct 5-grams: {domains.biomed.test.distinct_percent_in_train:.1f}%, "
        "{domains.finance.test.distinct_percent_in_train:.1f}% and {domains.law.test.distinct_percent_in_train:.1f}%; "
        "validation against train: {domains.biomed.validation.percent_in_train:.1f}%, "
        "{domains.finance.validation.percent_in_train:.1f}% and {domains.law.validation.percent_in_train:.1f}%)",
    ],
    "latency.json": [
        "generates {settings.tokens} tokens greedily with each predictor (own KV caches, warm, median of "
        "{settings.repeats} runs)",
        "({wall_s:.0f} s once the stores exist; load average {machine.load_average_at_start.0:.1f} at the start; base "
        "ms per token: large {ranges.large.base_ms.0:.1f}–{ranges.large.base_ms.1:.1f}, medium "
        "{ranges.medium.base_ms.0:.1f}–{ranges.medium.base_ms.1:.1f}, small "
        "{ranges.small.base_ms.0:.1f}–{ranges.small.base_ms.1:.1f};",
        # in the Cost section: the stores the app serves
        "The current stores ({rows.*.entries|min:,}–{rows.*.entries|max:,} entries)",
    ],
    "cost.json": [
        "({wall_s|minutes:.1f} minutes; torch and FAISS on one thread",
        "the base's step took {rows.*.base_ms|min:.1f}–{rows.*.base_ms|max:.1f} ms",
        "load average {machine.load_average_at_start.0:.1f} at the start, {machine.load_average_at_end.0:.1f} at the "
        "end",
        "median {ratio_memdec:.2f}x; ratios are to the base within each row",
        # the table's columns measured at every size: entries, exact search, IVF-PQ and HNSW with their recall
        "| {rows.0.entries:,} | {rows.0.search_ms:.2f} | {rows.0.ratio_knn:.2f}x | {rows.1.search_ms:.2f} "
        "({rows.1.recall_at_k:.3f}) | {rows.1.ratio_knn:.2f}x | {rows.2.search_ms:.2f} ({rows.2.recall_at_k:.3f}) | "
        "{rows.2.ratio_knn:.2f}x |",
        "| {rows.3.entries:,} | {rows.3.search_ms:.2f} | {rows.3.ratio_knn:.2f}x | {rows.4.search_ms:.2f} "
        "({rows.4.recall_at_k:.3f}) | {rows.4.ratio_knn:.2f}x | {rows.5.search_ms:.2f} ({rows.5.recall_at_k:.3f}) | "
        "{rows.5.ratio_knn:.2f}x |",
        "| {rows.6.entries:,} | {rows.6.search_ms:.2f} | {rows.6.ratio_knn:.2f}x | {rows.7.search_ms:.2f} "
        "({rows.7.recall_at_k:.3f}) | {rows.7.ratio_knn:.2f}x | {rows.8.search_ms:.2f} ({rows.8.recall_at_k:.3f}) | "
        "{rows.8.ratio_knn:.2f}x |",
        "| {rows.9.entries:,} | {rows.9.search_ms:.2f} | {rows.9.ratio_knn:.2f}x |",
        "by 2x at about **{crossovers.exact.2.entries|thousands:,} entries** and by 10x at about "
        "**{crossovers.exact.10.entries|thousands:,} entries**",
    ],
    "hostile_load.json": [
        "One address ({attack.address}) runs {attack.streams} parallel loops",
        "| quiet ({attack.start_s:.0f} s) |",
        "| {normal.quiet.count} | {normal.quiet.p50_s:.2f} s | {normal.quiet.p95_s:.2f} s | "
        "{normal.quiet.max_s:.2f} s | {normal.quiet.failures} |",
        "| {normal.attack.count} | {normal.attack.p50_s:.2f} s | **{normal.attack.p95_s:.2f} s** | "
        "{normal.attack.max_s:.2f} s | {normal.attack.failures} |",
        "| {normal.after.count} | {normal.after.p50_s:.2f} s | {normal.after.p95_s:.2f} s | "
        "{normal.after.max_s:.2f} s | {normal.after.failures} |",
        "Back to the quiet p95 {recovery_s:.1f} s after the attack",
        "The attacker's {attacker.requests:,} requests: {attacker.outcomes.*more than 10 requests a second*|sum:,} "
        "refused for its rate, {attacker.outcomes.*8 requests waiting*|sum} for its share of the queue, "
        "{attacker.outcomes.*4 requests running*|sum} for its 4 running, {attacker.outcomes.complete} answered; "
        "\"Queue is full\" seen by nobody",
    ],
    "session_memory.json": [
        "sends {requests:,} requests, each a new session",
        "from {clients} loopback addresses",
        "the server's RSS went from {rss_mb.0.1:.0f} MB to {rss_mb.-1.1:.0f} MB, **+{growth_mb:.1f} MB for "
        "{requests:,} requests ({growth_kb_per_request:.1f} KB each)**, with no failure",
    ],
    "your_memory.json": [
        "({corpus.tokens.train:,} train / {corpus.tokens.validation:,} validation)",
        "(load average {machine.load_average_at_start.0:.1f} at the start, {machine.load_average_at_end.0:.1f} at the "
        "end): **{total_s:.1f} s, {total_s|minutes:.1f} minutes, from the file to a usable decoder**: `memory build` "
        "{build_s:.1f} s",
        "then `memory distil` {distil_s:.1f} s (kNN temperature {phases_s.kNN temperature on validation:.1f} s, kNN "
        "targets {phases_s.kNN targets:.1f} s, {steps} training steps {phases_s.training:.1f} s, α "
        "{phases_s.alpha on validation:.1f} s), against the {estimated_distillation_s} s the page estimates",
        "base {validation_perplexity.base:.2f}, base + kNN-LM {validation_perplexity.base + kNN-LM:.2f}, base + MemDec "
        "{validation_perplexity.base + MemDec:.2f} (α = {alpha}), decoder alone "
        "{validation_perplexity.Memory Decoder alone:.2f}",
    ],
    "smollm2/startup.json": [
        "(load average {load_average_at_start:.1f};",
        "| page answers | {first_start.page:.1f} s | {later_start.page:.1f} s | |",
        "| first /compare with base + Memory Decoder | **{first_start.base_and_memdec:.1f} s** | "
        "**{later_start.base_and_memdec:.1f} s** |",
        "(law memory, third store in the build queue) | **{first_start.knn:.1f} s** | {later_start.knn:.1f} s |",
        "/compare through the API takes {warm.compare_ms_median} ms (median of 20; 90th percentile "
        "{warm.compare_ms_p90} ms",
        "a generated token takes {warm.ms_per_token.base:.1f} ms with the base alone, "
        "{warm.ms_per_token.mix_memdec:.1f} ms with the Memory Decoder (**{warm.ratio_to_base.mix_memdec:.3f}x**",
        "and {warm.ms_per_token.mix_knn:.1f} ms with the kNN-LM ({warm.ratio_to_base.mix_knn:.2f}x",
    ],
    "smollm2/evaluation.json": [  # the rows of biomed, finance and law
        "| base + Memory Decoder no more than 3% above base + kNN-LM | {0.memdec_vs_knn.ratio|change:+.1f}% | "
        "{1.memdec_vs_knn.ratio|change:+.1f}% | {2.memdec_vs_knn.ratio|change:+.1f}% |",
        "| the mixture at least 10% below the decoder alone | {0.memdec_vs_alone.ratio|change:.1f}% | "
        "{1.memdec_vs_alone.ratio|change:.1f}% | {2.memdec_vs_alone.ratio|change:.1f}% | met |",
        "| tuned alpha strictly inside its grid | {0.alpha.0} | {1.alpha.0} | {2.alpha.0} |",
        "(test perplexity {*.alone.ppl|min:.0f}–{*.alone.ppl|max:.0f})",
        "beats the CE-only control of the same budget by only {2.memdec_vs_ce.ratio|fall:.1f}% (law), "
        "{1.memdec_vs_ce.ratio|fall:.1f}% (finance) and {0.memdec_vs_ce.ratio|fall:.1f}% (biomed)",
    ],
    "smollm2/general.json": [  # biomed, finance, law
        "The biomed memory, mixed at the largest alpha ({0.alpha.0}), costs {0.change.ratio|change:.1f}% on "
        "general text",
        "the law memory, at alpha {2.alpha.0}, even lowers general perplexity by {2.change.ratio|fall:.1f}%",
    ],
    "smollm2/timings.json": [
        "the steps in `assets/results/smollm2/timings.json` add up to {*|sum|minutes:.0f} minutes (corpora "
        "{corpora|minutes:.1f} min with the source downloads; six decoders {train*|min|minutes:.1f}–"
        "{train*|max|minutes:.1f} min each;",
        "general text {evaluate general text|minutes:.1f} min)",
    ],
}
