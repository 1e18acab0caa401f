"""A pygame window that shows frames rendered by the environments (``render_mode="human"``)."""

from __future__ import annotations

import numpy as np


class Window:
    """Shows ``uint8 [H, W, 3]`` frames scaled by ``scale``; works with SDL's dummy driver headless."""

    def __init__(self, title: str, frame_shape: tuple[int, ...], scale: int = 4):
        import pygame

        self._pygame = pygame
        pygame.display.init()  # display only: no audio device is needed
        pygame.display.set_caption(title)
        self.scale = int(scale)
        height, width = frame_shape[:2]
        self.surface = pygame.display.set_mode((width * self.scale, height * self.scale))
        self.clock = pygame.time.Clock()

    def show(self, frame: np.ndarray, fps: float = 0) -> None:
        pygame = self._pygame
        frame = np.repeat(np.repeat(np.asarray(frame), self.scale, axis=0), self.scale, axis=1)
        pygame.surfarray.blit_array(self.surface, frame.transpose(1, 0, 2))
        pygame.display.flip()
        pygame.event.pump()
        if fps:
            self.clock.tick(fps)

    def events(self):
        """The pending pygame events (key presses, window close)."""
        return self._pygame.event.get()

    def close(self) -> None:
        self._pygame.display.quit()
