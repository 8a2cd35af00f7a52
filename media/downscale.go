package media

import (
	"image"
	"image/color"
)

// boxReduce shrinks img by the integer factor k (≥ 2) in each direction,
// averaging each k×k block, into an RGBA image. It is the first step for a
// large source: its cost is one pass over the source pixels, where
// x/image/draw's kernel scalers on a 30 MP source cost several passes and a
// float64 buffer of destination width × source height. The kernel then
// resamples the small result for each size bucket.
func boxReduce(img image.Image, k int) *image.RGBA {
	b := img.Bounds()
	ow, oh := max(1, b.Dx()/k), max(1, b.Dy()/k)
	dst := image.NewRGBA(image.Rect(0, 0, ow, oh))
	row := make([]uint8, 4*b.Dx()) // one source row as premultiplied RGBA
	acc := make([]uint32, 4*ow)
	for oy := 0; oy < oh; oy++ {
		clear(acc)
		for dy := 0; dy < k; dy++ {
			readRowRGBA(img, b.Min.Y+oy*k+dy, row)
			for ox := 0; ox < ow; ox++ {
				src := row[4*ox*k : 4*(ox+1)*k]
				a := acc[4*ox : 4*ox+4 : 4*ox+4]
				for i := 0; i < len(src); i += 4 {
					a[0] += uint32(src[i])
					a[1] += uint32(src[i+1])
					a[2] += uint32(src[i+2])
					a[3] += uint32(src[i+3])
				}
			}
		}
		n := uint32(k * k)
		out := dst.Pix[oy*dst.Stride : oy*dst.Stride+4*ow]
		for i, v := range acc {
			out[i] = uint8((v + n/2) / n)
		}
	}
	return dst
}

// readRowRGBA converts source row y into premultiplied 8-bit RGBA, with
// fast paths for what the PNG, JPEG and GIF decoders return.
func readRowRGBA(img image.Image, y int, row []uint8) {
	b := img.Bounds()
	w := b.Dx()
	switch m := img.(type) {
	case *image.RGBA:
		copy(row, m.Pix[m.PixOffset(b.Min.X, y):][:4*w])
	case *image.NRGBA:
		src := m.Pix[m.PixOffset(b.Min.X, y):][:4*w]
		for i := 0; i < len(src); i += 4 {
			a := uint32(src[i+3])
			row[i] = uint8(uint32(src[i]) * a / 255)
			row[i+1] = uint8(uint32(src[i+1]) * a / 255)
			row[i+2] = uint8(uint32(src[i+2]) * a / 255)
			row[i+3] = uint8(a)
		}
	case *image.Gray:
		src := m.Pix[m.PixOffset(b.Min.X, y):][:w]
		for x, v := range src {
			row[4*x], row[4*x+1], row[4*x+2], row[4*x+3] = v, v, v, 255
		}
	case *image.Gray16:
		src := m.Pix[m.PixOffset(b.Min.X, y):][:2*w]
		for x := 0; x < w; x++ {
			v := src[2*x] // the high byte
			row[4*x], row[4*x+1], row[4*x+2], row[4*x+3] = v, v, v, 255
		}
	case *image.RGBA64:
		src := m.Pix[m.PixOffset(b.Min.X, y):][:8*w]
		for x := 0; x < w; x++ {
			row[4*x], row[4*x+1], row[4*x+2], row[4*x+3] = src[8*x], src[8*x+2], src[8*x+4], src[8*x+6]
		}
	case *image.YCbCr:
		for x := 0; x < w; x++ {
			yi, ci := m.YOffset(b.Min.X+x, y), m.COffset(b.Min.X+x, y)
			r, g, bl := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
			row[4*x], row[4*x+1], row[4*x+2], row[4*x+3] = r, g, bl, 255
		}
	case *image.Paletted:
		src := m.Pix[m.PixOffset(b.Min.X, y):][:w]
		for x, idx := range src {
			r, g, bl, a := color.Transparent.RGBA()
			if int(idx) < len(m.Palette) {
				r, g, bl, a = m.Palette[idx].RGBA()
			}
			row[4*x], row[4*x+1], row[4*x+2], row[4*x+3] = uint8(r>>8), uint8(g>>8), uint8(bl>>8), uint8(a>>8)
		}
	default: // NRGBA64, CMYK, ...: rare, and the pixel cap bounds the cost
		for x := 0; x < w; x++ {
			r, g, bl, a := img.At(b.Min.X+x, y).RGBA()
			row[4*x], row[4*x+1], row[4*x+2], row[4*x+3] = uint8(r>>8), uint8(g>>8), uint8(bl>>8), uint8(a>>8)
		}
	}
}
