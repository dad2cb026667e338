#include "core/demo/toy_world.h"

#include <cmath>

namespace sdl::toy {

int caption_index(int colour, Shape shape) {
    return colour * static_cast<int>(kShapes.size()) + static_cast<int>(shape);
}

std::string caption(int colour, Shape shape) {
    return std::string("a ") + kColours.at(colour).name + " " + kShapeNames.at(static_cast<size_t>(shape));
}

std::string vocabulary() {
    std::string colours, shapes;
    for (const auto& c : kColours)
        colours += (colours.empty() ? "" : ", ") + std::string(c.name);
    for (const char* s : kShapeNames)
        shapes += (shapes.empty() ? "" : ", ") + std::string(s);
    return "\"a <colour> <shape>\" with colour " + colours + " and shape " + shapes;
}

Scene random_scene(std::mt19937_64& rng, int colour, Shape shape) {
    Scene s;
    s.colour = colour;
    s.shape = shape;
    s.size = std::uniform_int_distribution<int>(kMinSize, kMaxSize)(rng);
    std::uniform_int_distribution<int> corner(0, kImageSize - s.size);
    s.x = corner(rng);
    s.y = corner(rng);
    return s;
}

Scene random_scene(std::mt19937_64& rng) {
    const int colour = std::uniform_int_distribution<int>(0, static_cast<int>(kColours.size()) - 1)(rng);
    const int shape = std::uniform_int_distribution<int>(0, static_cast<int>(kShapes.size()) - 1)(rng);
    return random_scene(rng, colour, kShapes[static_cast<size_t>(shape)]);
}

namespace {

bool inside(const Scene& s, double px, double py) {
    const double half = s.size / 2.0, cx = s.x + half, cy = s.y + half;
    switch (s.shape) {
    case Shape::circle:
        return (px - cx) * (px - cx) + (py - cy) * (py - cy) <= half * half;
    case Shape::square:
        return px >= s.x && px <= s.x + s.size && py >= s.y && py <= s.y + s.size;
    case Shape::triangle:  // apex at the top centre, base along the bottom edge
        return py >= s.y && py <= s.y + s.size && std::abs(px - cx) <= (py - s.y) / 2.0;
    }
    return false;
}

} // namespace

torch::Tensor render(const Scene& s) {
    constexpr int kSub = 4;
    auto img = torch::ones({3, kImageSize, kImageSize});
    auto a = img.accessor<float, 3>();
    const auto& rgb = kColours.at(s.colour).rgb;
    // Only the box can hold ink; one pixel of margin keeps the anti-aliased rim.
    const int x0 = std::max(0, s.x - 1), x1 = std::min(kImageSize, s.x + s.size + 1);
    const int y0 = std::max(0, s.y - 1), y1 = std::min(kImageSize, s.y + s.size + 1);
    for (int y = y0; y < y1; ++y)
        for (int x = x0; x < x1; ++x) {
            int hits = 0;
            for (int sy = 0; sy < kSub; ++sy)
                for (int sx = 0; sx < kSub; ++sx)
                    hits += inside(s, x + (sx + 0.5) / kSub, y + (sy + 0.5) / kSub);
            const float cover = static_cast<float>(hits) / (kSub * kSub);
            for (int c = 0; c < 3; ++c)
                a[c][y][x] = 1.0f - cover * (1.0f - rgb[static_cast<size_t>(c)] / 255.0f);
        }
    return img;
}

Reading classify(const torch::Tensor& image) {
    Reading r;
    const auto img = image.to(torch::kFloat).clamp(0, 1);
    // Every palette colour is at least 0.8 below white in one channel; anti-aliased rims and a
    // model's faint haze are not counted.
    r.mask = (1 - img).amax(0) > 0.4;  // [H, W]
    r.ink_pixels = static_cast<int>(r.mask.sum().item<int64_t>());
    if (r.ink_pixels < img.size(1) * img.size(2) / 100)
        return r;
    r.found = true;
    const auto mean = img.masked_select(r.mask.unsqueeze(0).expand_as(img)).view({3, -1}).mean(1);  // [3]
    double best = 1e9;
    for (size_t i = 0; i < kColours.size(); ++i) {
        double d = 0;
        for (int c = 0; c < 3; ++c) {
            const double diff = mean[c].item<double>() - kColours[i].rgb[static_cast<size_t>(c)] / 255.0;
            d += diff * diff;
        }
        if (d < best) {
            best = d;
            r.colour = static_cast<int>(i);
        }
    }
    const auto rows = r.mask.any(1).nonzero(), cols = r.mask.any(0).nonzero();
    const int64_t h = rows.max().item<int64_t>() - rows.min().item<int64_t>() + 1;
    const int64_t w = cols.max().item<int64_t>() - cols.min().item<int64_t>() + 1;
    r.fill = static_cast<double>(r.ink_pixels) / static_cast<double>(h * w);
    // Midpoints between the ideal fills 0.5, pi/4 and 1.
    r.shape = r.fill < 0.64 ? Shape::triangle : r.fill < 0.9 ? Shape::circle : Shape::square;
    return r;
}

} // namespace sdl::toy
