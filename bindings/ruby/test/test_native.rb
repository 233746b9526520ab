# frozen_string_literal: true

require 'minitest/autorun'
require 'tasker'

# The extension's JSON conversions (TaskerCore::Native.round_trip): what a handler's result
# becomes when stored, and the problems reported for values JSON cannot hold. Needs the
# built extension (ctest sets TASKER_RUBY_NATIVE).
class TestNativeConversions < Minitest::Test
  def setup
    TaskerCore::Native.load!
  rescue LoadError => e
    skip "extension not built: #{e.message}"
  end

  def rt(value)
    TaskerCore::Native.round_trip(value)
  end

  def test_values_round_trip
    value = { 'a' => [1, -2, 2.5, 'é', true, false, nil], 'b' => { 'c' => {} }, 'max' => 2**63 - 1,
              'min' => -(2**63) + 1 }
    assert_equal value, rt(value)
    assert_equal({ 'sym' => 'val' }, rt({ sym: :val }))
    assert_equal [], rt([])
    assert rt({ 'k' => 1 }).keys.first.frozen?
  end

  def test_problems
    assert_equal 'at is a Time', rt({ 'at' => Time.at(0) })
    assert_equal 'x[1] is NaN, which JSON cannot represent', rt({ 'x' => [1, Float::NAN] })
    assert_equal 'the value is Infinity, which JSON cannot represent', rt(Float::INFINITY)
    assert_match(/has a key of class Integer/, rt({ 1 => 2 }))
    assert_match(/is not valid UTF-8/, rt({ 's' => "\xFF".dup.force_encoding('UTF-8') }))
    assert_match(/binary data/, rt({ 'b' => "\xFF".dup.force_encoding('BINARY') }))
    assert_equal({ 'latin' => 'é' }, rt({ 'latin' => 'é'.encode('ISO-8859-1') }))
    cyclic = {}
    cyclic['self'] = cyclic
    assert_match(/nested more than 100 levels/, rt(cyclic))
  end

  def test_big_integers_need_the_text_path
    assert_equal :text, rt({ 'big' => 2**64 })
    assert_equal :text, rt([-(2**63)])
  end
end
