"""Reference feature sets of the study, computed on the same atoms as the layers.

- an autoencoder of the SOAP descriptor (unsupervised, nonlinear);
- PCovR of the SOAP descriptor against the atomic energy (supervised, linear).

A layer that exposes physical labels better than both has learned something
beyond a compression of its input.
"""

from __future__ import annotations

from typing import Dict

import numpy as np
import torch


def reference_sets(soap: np.ndarray, target: np.ndarray, config) -> Dict[str, np.ndarray]:
    """Unsupervised (autoencoder) and supervised linear (PCovR) references."""
    from sklearn.decomposition import PCA
    from skmatter.decomposition import PCovR

    x = PCA(n_components=min(64, soap.shape[1]), random_state=0).fit_transform(
        (soap - soap.mean(0)) / (soap.std() + 1e-12)
    )
    x = x / (x.std() + 1e-12)
    width = config.autoencoder_width
    with torch.random.fork_rng():
        torch.manual_seed(config.seeds[0])
        encoder = torch.nn.Sequential(
            torch.nn.Linear(x.shape[1], 64), torch.nn.SiLU(), torch.nn.Linear(64, width)
        ).double()
        decoder = torch.nn.Sequential(
            torch.nn.Linear(width, 64), torch.nn.SiLU(), torch.nn.Linear(64, x.shape[1])
        ).double()
        data = torch.as_tensor(x)
        optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=3e-3)
        generator = torch.Generator().manual_seed(config.seeds[0])
        for _ in range(config.autoencoder_epochs):
            for batch in torch.randperm(len(data), generator=generator).split(512):
                optimizer.zero_grad()
                loss = torch.mean((decoder(encoder(data[batch])) - data[batch]) ** 2)
                loss.backward()
                optimizer.step()
        with torch.no_grad():
            code = encoder(data).numpy()
    y = (target - target.mean()) / (target.std() + 1e-12)
    pcovr = PCovR(mixing=0.5, n_components=width).fit(x, y[:, None]).transform(x)
    return {"autoencoder/latent": code, "pcovr/latent": pcovr}
