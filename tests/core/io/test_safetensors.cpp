// safetensors reader/writer: round trips, and each malformed file gives an sdl::Error that names
// the file and what is wrong with it.
#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/util/error.h"

#include <QTemporaryDir>
#include <QtTest>

#include <cstring>
#include <fstream>

namespace {

// Writes a file by hand so tests can produce headers the writer never would.
void write_raw(const std::string& path, const std::string& header, const std::string& data,
               const uint64_t* length_override = nullptr) {
    std::ofstream f(path, std::ios::binary);
    const uint64_t n = length_override ? *length_override : header.size();
    f.write(reinterpret_cast<const char*>(&n), 8);
    f.write(header.data(), static_cast<std::streamsize>(header.size()));
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

// The message of the sdl::Error that opening path throws; empty when it opens.
QString open_error(const std::string& path) {
    try {
        sdl::SafetensorsFile::open(path);
    } catch (const sdl::Error& e) {
        return QString::fromStdString(e.what());
    }
    return {};
}

} // namespace

class TestSafetensors : public QObject {
    Q_OBJECT
    QTemporaryDir dir_;
    std::string file(const char* name) const { return dir_.filePath(name).toStdString(); }

    void expect_error(const std::string& path, const QStringList& fragments) {
        const QString msg = open_error(path);
        QVERIFY2(!msg.isEmpty(), ("no error for " + path).c_str());
        QVERIFY2(msg.contains(QString::fromStdString(path)), qPrintable("message lacks the path: " + msg));
        for (const auto& frag : fragments)
            QVERIFY2(msg.contains(frag), qPrintable("message lacks '" + frag + "': " + msg));
    }

private slots:
    void initTestCase() { QVERIFY(dir_.isValid()); }

    void roundTripBlobs() {
        const float f32[3] = {1.5f, -2.0f, 3.25f};
        const uint16_t f16[2] = {0x3c00, 0xc000};  // 1.0, -2.0
        const int64_t i64[2] = {7, -9};
        const int32_t i32[1] = {42};
        const uint16_t bf16[1] = {0x3f80};  // 1.0
        const std::string path = file("round.safetensors");
        sdl::write_safetensors(path,
                               {{"a.f32", sdl::DType::F32, {3}, f32, sizeof f32},
                                {"b.f16", sdl::DType::F16, {1, 2}, f16, sizeof f16},
                                {"c.i64", sdl::DType::I64, {2}, i64, sizeof i64},
                                {"d.i32", sdl::DType::I32, {}, i32, sizeof i32},
                                {"e.bf16", sdl::DType::BF16, {1, 1, 1}, bf16, sizeof bf16},
                                {"f.empty", sdl::DType::F32, {0, 4}, nullptr, 0}},
                               {{"format", "pt"}});
        const auto f = sdl::SafetensorsFile::open(path);
        QCOMPARE(f->tensors().size(), size_t(6));
        QCOMPARE(f->metadata().at("format"), std::string("pt"));
        const auto& a = f->at("a.f32");
        QCOMPARE(a.dtype, sdl::DType::F32);
        QCOMPARE(a.shape, (std::vector<int64_t>{3}));
        QCOMPARE(std::memcmp(a.data, f32, sizeof f32), 0);
        QCOMPARE(std::memcmp(f->at("b.f16").data, f16, sizeof f16), 0);
        QCOMPARE(std::memcmp(f->at("c.i64").data, i64, sizeof i64), 0);
        QCOMPARE(f->at("d.i32").shape.size(), size_t(0));
        QCOMPARE(f->at("d.i32").numel(), int64_t(1));
        QCOMPARE(f->at("f.empty").numel(), int64_t(0));

        // The header is padded so the data section starts on an 8-byte boundary.
        std::ifstream in(path, std::ios::binary);
        uint64_t n = 0;
        in.read(reinterpret_cast<char*>(&n), 8);
        QCOMPARE(n % 8, uint64_t(0));

        QVERIFY(torch::equal(sdl::to_tensor(f->at("b.f16"), torch::kFloat32),
                             torch::tensor({1.0f, -2.0f}).reshape({1, 2})));
        QCOMPARE(sdl::to_tensor(f->at("e.bf16"), torch::kFloat32).item<float>(), 1.0f);
        QCOMPARE(sdl::to_tensor(f->at("c.i64")).scalar_type(), torch::kInt64);
        QCOMPARE(sdl::to_tensor(f->at("f.empty")).sizes().vec(), (std::vector<int64_t>{0, 4}));
    }

    void roundTripTorch() {
        const std::string path = file("torch.safetensors");
        torch::manual_seed(0);
        std::map<std::string, torch::Tensor> in{
            {"x", torch::randn({4, 5})},
            {"x_t", torch::randn({5, 4}).t()},  // non-contiguous: written in logical order
            {"h", torch::randn({3}).to(torch::kFloat16)},
            {"b", torch::randn({2, 2}).to(torch::kBFloat16)},
            {"ids", torch::arange(10, torch::kInt64)},
            {"i", torch::arange(3, torch::kInt32)}};
        sdl::save_tensors(path, in);
        const auto f = sdl::SafetensorsFile::open(path);
        for (const auto& [name, t] : in) {
            const auto back = sdl::to_tensor(f->at(name));
            QCOMPARE(back.scalar_type(), t.scalar_type());
            QVERIFY2(torch::equal(back, t), name.c_str());
        }
        // One-pass conversion to another dtype.
        QVERIFY(torch::equal(sdl::to_tensor(f->at("h"), torch::kFloat32), in["h"].to(torch::kFloat32)));
    }

    void saveRejectsUnsupportedDtype() {
        try {
            sdl::save_tensors(file("bad.safetensors"), {{"flags", torch::zeros({2}, torch::kBool)}});
            QFAIL("expected sdl::Error");
        } catch (const sdl::Error& e) {
            QVERIFY(QString(e.what()).contains("flags"));
        }
        QVERIFY(!QFile::exists(dir_.filePath("bad.safetensors")));
    }

    void unalignedTensorsConvert() {
        // An odd-length F16 tensor pushes the following F32 onto a 2-byte boundary.
        const std::string path = file("unaligned.safetensors");
        const float vals[2] = {0.5f, -7.0f};
        std::string data(6, '\0');
        data.append(reinterpret_cast<const char*>(vals), sizeof vals);
        std::string header = R"({"h":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},)"
                             R"("f":{"dtype":"F32","shape":[2],"data_offsets":[6,14]}})";
        header.append((8 - header.size() % 8) % 8, ' ');  // data section 8-aligned, so "f" is not
        write_raw(path, header, data);
        const auto f = sdl::SafetensorsFile::open(path);
        QVERIFY(torch::equal(sdl::to_tensor(f->at("f")), torch::tensor({0.5f, -7.0f})));
    }

    void loadTensorArgSplitsAtLastColon() {
        const std::string path = file("a:b.safetensors");
        sdl::save_tensors(path, {{"unet.out", torch::ones({2})}});
        QVERIFY(torch::equal(sdl::load_tensor_arg(path + ":unet.out"), torch::ones({2})));
        try {
            sdl::load_tensor_arg(path + ":nope");
            QFAIL("expected sdl::Error");
        } catch (const sdl::Error& e) {
            QVERIFY(QString(e.what()).contains("nope"));
            QVERIFY(QString(e.what()).contains(QString::fromStdString(path)));
        }
        QVERIFY_EXCEPTION_THROWN(sdl::load_tensor_arg("no-colon"), sdl::UsageError);
    }

    void missingFile() { expect_error(file("does-not-exist.safetensors"), {"cannot open"}); }

    void truncatedLength() {
        const std::string path = file("short.safetensors");
        std::ofstream(path, std::ios::binary) << "abc";
        expect_error(path, {"truncated", "3 bytes"});
    }

    void truncatedData() {
        const std::string path = file("cut.safetensors");
        write_raw(path, R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(8, '\0'));
        expect_error(path, {"'w'", "outside the data section"});
    }

    void headerLengthPastEnd() {
        const std::string path = file("longheader.safetensors");
        const uint64_t n = 1000;
        write_raw(path, "{}", "", &n);
        expect_error(path, {"header length 1000", "past the end"});
    }

    void badJson() {
        const std::string path = file("badjson.safetensors");
        write_raw(path, R"({"w":{"dtype":"F32",)", "");
        expect_error(path, {"not valid JSON"});
    }

    void headerNotObject() {
        const std::string path = file("array.safetensors");
        write_raw(path, "[1,2]", "");
        expect_error(path, {"expected an object"});
    }

    void offsetsOutOfRange() {
        const std::string path = file("range.safetensors");
        write_raw(path, R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", std::string(8, '\0'));
        expect_error(path, {"'w'", "[8, 12]", "outside the data section of 8 bytes"});
    }

    void offsetsReversed() {
        const std::string path = file("reversed.safetensors");
        write_raw(path, R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", std::string(8, '\0'));
        expect_error(path, {"'w'", "data_offsets"});
    }

    void overlappingOffsets() {
        const std::string path = file("overlap.safetensors");
        write_raw(path,
                  R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                  std::string(12, '\0'));
        expect_error(path, {"'a'", "'b'", "overlap"});
    }

    void unknownDtype() {
        const std::string path = file("f64.safetensors");
        write_raw(path, R"({"double_w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", std::string(8, '\0'));
        expect_error(path, {"double_w", "F64", "supported"});
    }

    void shapeBytesMismatch() {
        const std::string path = file("mismatch.safetensors");
        write_raw(path, R"({"w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,8]}})", std::string(8, '\0'));
        expect_error(path, {"'w'", "[2, 3]", "needs 12 bytes", "give 8"});
    }

    void malformedEntry() {
        const std::string path = file("entry.safetensors");
        write_raw(path, R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", "");
        expect_error(path, {"'w'", "non-negative"});
        write_raw(path, R"({"w":{"dtype":"F32","shape":[1]}})", std::string(4, '\0'));
        expect_error(path, {"'w'", "data_offsets"});
    }

    void metadataMustBeStrings() {
        const std::string path = file("meta.safetensors");
        write_raw(path, R"({"__metadata__":{"format":1}})", "");
        expect_error(path, {"__metadata__", "format", "string"});
    }

    void writerIsAtomic() {
        // A failing fill leaves neither the target nor a temporary file behind.
        const QString sub = dir_.filePath("atomic");
        QDir().mkpath(sub);
        const std::string path = (sub + "/model.safetensors").toStdString();
        try {
            sdl::write_safetensors_streamed(path, {{"w", sdl::DType::F32, {4}}},
                                            [](size_t, uint8_t*) { throw sdl::Error("generator failed"); });
            QFAIL("expected sdl::Error");
        } catch (const sdl::Error& e) {
            QCOMPARE(QString(e.what()), QString("generator failed"));
        }
        QCOMPARE(QDir(sub).entryList(QDir::Files).size(), 0);
    }
};

QTEST_GUILESS_MAIN(TestSafetensors)
#include "test_safetensors.moc"
