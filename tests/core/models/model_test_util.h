#pragma once
// Shared by the model tests: reference tensors, the tiny model, error measures, sd15 shape lists.
#include "core/io/model_files.h"
#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/util/error.h"
#include "core/util/resources.h"
#include "fixtures/expect_error.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <QtTest>

#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace sdl_test {

inline std::string data_path(const std::string& rel) { return std::string(SDLENS_TEST_DATA) + "/" + rel; }

inline torch::Tensor reference(const std::string& key) {
    static const auto file = sdl::SafetensorsFile::open(data_path("reference.safetensors"));
    return sdl::to_tensor(file->at(key));
}

inline const sdl::ModelFiles& tiny(bool single_file) {
    static const sdl::ModelFiles folder = sdl::open_model_files(data_path("tiny-sd"));
    static const sdl::ModelFiles single = sdl::open_model_files(data_path("tiny-sd.single-file.safetensors"));
    return single_file ? single : folder;
}

inline double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
    return (a.to(torch::kCPU, torch::kDouble) - b.to(torch::kCPU, torch::kDouble)).abs().max().item<double>();
}

inline nlohmann::json sd15() {
    static const nlohmann::json j = [] {
        std::ifstream in(sdl::resource_path("sd15-shapes.json"));
        return nlohmann::json::parse(in);
    }();
    return j;
}

// Every parameter name and shape of the module equals the list (names -> shapes) exactly.
inline void compare_names_and_shapes(torch::nn::Module& m, const nlohmann::json& expected) {
    std::map<std::string, std::vector<int64_t>> got;
    for (const auto& p : m.named_parameters())
        got[p.key()] = p.value().sizes().vec();
    for (const auto& b : m.named_buffers())
        got[b.key()] = b.value().sizes().vec();
    std::map<std::string, std::vector<int64_t>> want;
    for (const auto& [k, v] : expected.items())
        want[k] = v.get<std::vector<int64_t>>();
    for (const auto& [k, v] : want) {
        const auto it = got.find(k);
        QVERIFY2(it != got.end(), ("module lacks " + k).c_str());
        QVERIFY2(it->second == v, ("shape differs for " + k).c_str());
    }
    for (const auto& [k, v] : got)
        QVERIFY2(want.count(k), ("module has extra " + k).c_str());
}

} // namespace sdl_test
