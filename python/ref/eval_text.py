"""Reference values from sacrebleu, rouge-score, nltk's Porter stemmer and Python's `re` (the
lm-evaluation-harness word count) for edgeloop-eval's
differential tests. JSON request on stdin ({"task": ..., ...}), JSON result on stdout."""
import json
import sys

import logging

logging.disable(logging.CRITICAL)


def streams(refs):
    k = max(len(r) for r in refs)
    return [[r[j] if j < len(r) else None for r in refs] for j in range(k)]


def bleu_result(s):
    return {"score": s.score, "counts": list(s.counts), "totals": list(s.totals),
            "bp": s.bp, "sys_len": s.sys_len, "ref_len": s.ref_len,
            "precisions": list(s.precisions)}


def main():
    req = json.load(sys.stdin)
    task = req["task"]
    if task == "bleu":
        from sacrebleu.metrics import BLEU
        out = []
        for c in req["cases"]:
            b = BLEU(lowercase=c.get("lowercase", False), force=True)
            corpus = bleu_result(b.corpus_score(c["hyps"], streams(c["refs"])))
            sb = BLEU(effective_order=True, force=True)
            sent = [sb.sentence_score(h, r).score for h, r in zip(c["hyps"], c["refs"])]
            out.append({"corpus": corpus, "sentence": sent})
        json.dump(out, sys.stdout)
    elif task == "chrf":
        from sacrebleu.metrics import CHRF
        out = []
        for c in req["cases"]:
            res = {}
            for name, wo in [("chrf", 0), ("chrfpp", 2)]:
                m = CHRF(word_order=wo)
                res[name] = m.corpus_score(c["hyps"], streams(c["refs"])).score
                res[name + "_sentence"] = [
                    m.sentence_score(h, r).score for h, r in zip(c["hyps"], c["refs"])
                ]
            out.append(res)
        json.dump(out, sys.stdout)
    elif task == "rouge":
        from rouge_score import rouge_scorer
        types = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
        out = []
        scorers = {s: rouge_scorer.RougeScorer(types, use_stemmer=s) for s in (False, True)}
        for c in req["cases"]:
            sc = scorers[c["stem"]]
            if len(c["targets"]) == 1:
                r = sc.score(c["targets"][0], c["prediction"])
            else:
                r = sc.score_multi(c["targets"], c["prediction"])
            out.append({t: [r[t].precision, r[t].recall, r[t].fmeasure] for t in types})
        json.dump(out, sys.stdout)
    elif task == "porter":
        from nltk.stem import porter
        st = porter.PorterStemmer()
        json.dump([st.stem(w) for w in req["words"]], sys.stdout)
    elif task == "tokenize13a":
        from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
        t = Tokenizer13a()
        json.dump([t(s) for s in req["lines"]], sys.stdout)
    elif task == "harness_words":
        # lm-evaluation-harness's word count for word_perplexity (wikitext task):
        # len(re.split(r"\s+", doc)); and every code point that r"\s" matches.
        import re
        counts = [len(re.split(r"\s+", d)) for d in req["docs"]]
        space = [c for c in range(0x110000) if re.fullmatch(r"\s", chr(c))]
        json.dump({"counts": counts, "space_chars": space}, sys.stdout)
    else:
        raise SystemExit("unknown task " + task)


if __name__ == "__main__":
    main()
