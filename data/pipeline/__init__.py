"""From stored frames to training batches: dataset, temporal sampler, transforms, augmentation, multigrid
batch sampler, loaders, device batches and the random streams."""
