import Testing
import EquivAudio
@Test func placeholder() {}
