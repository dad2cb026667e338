// Anchor translation unit: its only job is to build the shared torch precompiled header.
