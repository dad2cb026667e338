#include "core/models/clip_text_model.h"
#include "core/models/load.h"
#include "core/models/weights.h"
#include "model_test_util.h"

#include <QtTest>

using namespace sdl_test;

class TestClipTextModel : public QObject {
    Q_OBJECT

    static sdl::ClipTextModel load(bool single_file, torch::Dtype dtype) {
        return sdl::load_text_encoder(tiny(single_file).text_encoder, dtype, torch::kCPU);
    }

    static void parity(bool single_file) {
        torch::NoGradGuard g;
        auto m = load(single_file, torch::kFloat);
        const auto out = m->forward(reference("te.input_ids"));
        QCOMPARE(out.hidden_states.size(), size_t(6));
        const double last = max_abs(out.last_hidden_state, reference("te.last_hidden_state"));
        const double penult = max_abs(out.hidden_states[4], reference("te.penultimate_hidden_state"));
        qInfo("%s: last_hidden_state %.3g, penultimate %.3g", single_file ? "single file" : "folder", last, penult);
        QVERIFY(last <= 1e-4);
        QVERIFY(penult <= 1e-4);
    }

private slots:
    void parityFromFolder() { parity(false); }
    void parityFromSingleFile() { parity(true); }

    void clipSkipSelectsHiddenStates() {
        torch::NoGradGuard g;
        auto m = load(false, torch::kFloat);
        const auto ids = reference("te.input_ids");
        QVERIFY(max_abs(m->encode(ids, 1), reference("te.last_hidden_state")) <= 1e-4);
        QVERIFY(max_abs(m->encode(ids, 2), reference("te.penultimate_hidden_state")) <= 1e-4);
        expect_error([&] { m->encode(ids, 0); }, {"clip skip", "0"});
        expect_error([&] { m->encode(ids, 6); }, {"clip skip", "6"});
    }

    // bf16 keeps 8 bits of mantissa: on these unit-scale activations, errors of a few 1e-2.
    void bfloat16WithinBound() {
        torch::NoGradGuard g;
        auto m = load(false, torch::kBFloat16);
        const auto out = m->forward(reference("te.input_ids"));
        QCOMPARE(out.last_hidden_state.scalar_type(), torch::kBFloat16);
        const double err = max_abs(out.last_hidden_state, reference("te.last_hidden_state"));
        qInfo("bf16: last_hidden_state %.3g", err);
        QVERIFY(err <= 0.1);
    }

    void badConfigValuesAreNamed() {
        auto j = tiny(false).text_encoder.config;
        j["hidden_act"] = "relu";
        expect_error([&] { sdl::ClipTextConfig::from_json(j); }, {"hidden_act", "relu"});
        j = tiny(false).text_encoder.config;
        j["num_attention_heads"] = 5;
        expect_error([&] { sdl::ClipTextConfig::from_json(j); }, {"hidden_size", "num_attention_heads", "5"});
        j["num_attention_heads"] = -1;
        expect_error([&] { sdl::ClipTextConfig::from_json(j); }, {"num_attention_heads", "-1"});
        j["num_attention_heads"] = "four";
        expect_error([&] { sdl::ClipTextConfig::from_json(j); }, {"num_attention_heads", "four"});
    }

    void tooManyTokensRejected() {
        auto m = load(false, torch::kFloat);
        expect_error([&] { m->forward(torch::zeros({1, 78}, torch::kLong)); }, {"input_ids", "78"});
    }

    void sd15NamesAndShapes() {
        sdl::ClipTextModel m(sdl::ClipTextConfig::from_json(sd15()["text_encoder_config"]));
        compare_names_and_shapes(*m, sd15()["text_encoder"]);
        QCOMPARE(sdl::parameter_count(*m), int64_t(123060480));
    }
};

QTEST_GUILESS_MAIN(TestClipTextModel)
#include "test_clip_text_model.moc"
