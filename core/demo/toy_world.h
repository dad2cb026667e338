#pragma once
// The demo model's world: 128x128 pictures of one filled shape (circle, square or upright isosceles
// triangle) in one of four colours on white, captioned "a <colour> <shape>". Drawn procedurally from
// a seed, so training needs no image files; classify() reads a picture back, so the quality of what
// the trained model draws can be counted.
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <random>
#include <string>

namespace sdl::toy {

constexpr int kImageSize = 128;
constexpr int kMinSize = 40, kMaxSize = 90;  // pixels across, inclusive

enum class Shape { circle, square, triangle };
constexpr std::array<Shape, 3> kShapes{Shape::circle, Shape::square, Shape::triangle};
constexpr std::array<const char*, 3> kShapeNames{"circle", "square", "triangle"};

struct Colour {
    const char* name;
    std::array<uint8_t, 3> rgb;
};
constexpr std::array<Colour, 4> kColours{{{"red", {220, 40, 40}},
                                         {"green", {40, 170, 60}},
                                         {"blue", {40, 70, 220}},
                                         {"yellow", {230, 210, 40}}}};

struct Scene {
    int colour = 0;  // index into kColours
    Shape shape = Shape::circle;
    int x = 0, y = 0;  // top-left corner of the shape's square box, wholly inside the image
    int size = kMinSize;
};

// Every colour x shape caption, colour-major ("a red circle", "a red square", ...): 12 of them.
constexpr int kCaptionCount = static_cast<int>(kColours.size() * kShapes.size());
int caption_index(int colour, Shape shape);
std::string caption(int colour, Shape shape);
inline std::string caption(const Scene& s) { return caption(s.colour, s.shape); }
// The words the demo model was trained on, for its banner and its metadata.
std::string vocabulary();

Scene random_scene(std::mt19937_64& rng);
Scene random_scene(std::mt19937_64& rng, int colour, Shape shape);

// [3, 128, 128] float32 in [0, 1], edges anti-aliased by 4x4 supersampling.
torch::Tensor render(const Scene& s);

// What a picture shows, read the way a person would: the pixels that are clearly not white are the
// shape; their mean colour is the nearest palette colour, and how much of their bounding box they fill
// tells the shape (a triangle half, a circle pi/4, a square all of it).
struct Reading {
    bool found = false;  // false when under 1 % of the pixels are ink
    int colour = 0;
    Shape shape = Shape::circle;
    double fill = 0;     // ink pixels / bounding-box pixels
    int ink_pixels = 0;
    torch::Tensor mask;  // [H, W] bool: the ink
};
// image [3, H, W] float in [0, 1].
Reading classify(const torch::Tensor& image);

} // namespace sdl::toy
